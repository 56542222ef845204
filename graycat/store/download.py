"""Downloading a file into the models folder: resumable (the partial file is kept until it is complete), the free
space checked first, the SHA-256 checked before an atomic move into place. The transfer itself is huggingface_hub's
`http_get` (Range requests, retries of a dropped connection, the Hub's auth headers); the partial file is ours, so
an interrupted pull (Ctrl-C, a worker stopped, the network down for long) resumes where it stopped."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import httpx2
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get

from graycat.store import folder
from graycat.store.remote import PullError, Remote

Progress = Callable[[int, int | None], None]  # (bytes on disk, total bytes or None)
SPARE_BYTES = 64 * 2**20  # left free on the disk after a download
INTERRUPTED = 499  # the status of a pull stopped by Ctrl-C


class _Counting:
    """The partial file as http_get writes it, reporting its size after each write."""

    def __init__(self, file: BinaryIO, total: int | None, report: Progress | None) -> None:
        self._file, self._total, self._report = file, total, report

    def write(self, data: bytes) -> int:
        written = self._file.write(data)
        if self._report is not None:
            self._report(self._file.tell(), self._total)
        return written

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        return self._file.truncate(size)


def download(remote: Remote, models: Path, *, sha256: str | None = None, progress: Progress | None = None) -> Path:
    """`remote` as models/<its file name>, checked against `sha256` (else the source's own). A file already there
    from the same source with the same checksum is kept as it is."""
    expected = (sha256 or remote.sha256 or "").lower() or None
    target = models / remote.file_name
    models.mkdir(parents=True, exist_ok=True)
    if _pulled(target, remote, expected):
        if progress is not None:
            progress(target.stat().st_size, target.stat().st_size)
        return target
    key = expected or hashlib.sha256(remote.url.encode()).hexdigest()
    partial = models / folder.PARTIAL_DIR / f"{remote.file_name}.{key[:16]}.part"
    partial.parent.mkdir(exist_ok=True)
    with _locked(partial.with_suffix(".lock")):  # another pull of the same file waits, then finds it done
        if _pulled(target, remote, expected):
            return target
        _fetch(remote, partial, progress)
        digest = _sha256(partial)
        if expected is not None and digest != expected:
            partial.unlink()
            raise PullError(
                f"checksum mismatch for {remote.file_name}: expected {expected}, got {digest}; the "
                "download was discarded (run the pull again)",
                502,
            )
        os.replace(partial, target)
    folder.write_origin(target, {"ref": remote.ref, "url": remote.url, "sha256": digest, "size": target.stat().st_size})
    return target


def _pulled(target: Path, remote: Remote, expected: str | None) -> bool:
    """Whether `target` is this file already: the same SHA-256, or (none known) pulled from the same URL."""
    known = folder.read_origin(target) if target.is_file() else None
    if known is None:
        return False
    return known.get("sha256") == expected if expected else known.get("url") == remote.url


def _fetch(remote: Remote, partial: Path, progress: Progress | None) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    if remote.size is not None and have > remote.size:  # not this file's beginning: start again
        partial.unlink()
        have = 0
    if remote.size is not None and have == remote.size:
        return
    _check_space(partial.parent, None if remote.size is None else remote.size - have)
    try:
        with partial.open("ab") as file:
            http_get(
                remote.url,
                _Counting(file, remote.size, progress),  # type: ignore[arg-type]
                resume_size=have,
                headers=remote.headers,
                expected_size=remote.size,
                displayed_filename=remote.file_name,
                tqdm_class=_Silent,
            )
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise PullError(f"the disk of {partial.parent} is full; {_kept(partial)}", 507) from None
        if isinstance(exc, (httpx2.HTTPError, HfHubHTTPError)) or exc.errno is None:
            raise PullError(f"downloading {remote.file_name} failed: {_reason(exc)}; {_kept(partial)}", 502) from None
        raise
    except (httpx2.HTTPError, HfHubHTTPError) as exc:
        raise PullError(f"downloading {remote.file_name} failed: {_reason(exc)}; {_kept(partial)}", 502) from None
    except KeyboardInterrupt:
        raise PullError(f"interrupted; {_kept(partial)}", INTERRUPTED) from None


def _check_space(where: Path, needed: int | None) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(where).free
    if needed + SPARE_BYTES > free:
        raise PullError(
            f"not enough disk space in {where}: the download needs {folder.human(needed)} more, "
            f"{folder.human(free)} is free",
            507,
        )


def _kept(partial: Path) -> str:
    size = partial.stat().st_size if partial.exists() else 0
    return f"the {folder.human(size)} received are kept in {partial}: run the pull again to resume"


def _reason(exc: Exception) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(4 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield


class _Silent:
    """A progress bar that shows nothing: the caller reports progress its own way."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
