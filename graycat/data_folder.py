"""What a running `graycat up` keeps in its data folder: a lock (one `graycat up` per folder) and the URL of
the Redis it uses (mode 0600: it may hold a password), which `graycat token ...` reads when REDIS_URL is unset."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

LOCK = "up.lock"
REDIS_URL = "redis-url"


class FolderInUse(Exception):
    """Another `graycat up` holds the data folder."""


def lock(folder: Path) -> IO[str]:
    """Hold the folder's lock until the returned file is closed (or this process dies); FolderInUse when another
    process holds it. The file holds the holder's pid."""
    held = (folder / LOCK).open("a+")
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.seek(0)
        holder = held.read().strip() or "?"
        held.close()
        raise FolderInUse(
            f"another `graycat up` (pid {holder}) uses the data folder {folder}; stop it, or give "
            f"this one a folder of its own with GRAYCAT_DATA_DIR"
        ) from None
    held.truncate(0)
    held.write(f"{os.getpid()}\n")
    held.flush()
    return held


def in_use(folder: Path) -> bool:
    """Whether a `graycat up` holds the folder now."""
    try:
        lock(folder).close()
    except FolderInUse:
        return True
    except FileNotFoundError:  # no such folder
        return False
    return False


def write_redis_url(folder: Path, url: str) -> None:
    path = folder / REDIS_URL
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(url + "\n")


def remove_redis_url(folder: Path) -> None:
    with contextlib.suppress(OSError):
        (folder / REDIS_URL).unlink()


def running_redis_url(folder: Path) -> str | None:
    """The Redis URL of the `graycat up` running on `folder`; None when none runs (a file left by one that was
    killed is ignored)."""
    path = folder / REDIS_URL
    if not path.is_file() or not in_use(folder):
        return None
    return path.read_text().strip() or None
