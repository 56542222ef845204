"""What a pull downloads: the file's URL, name, size and SHA-256 as its source states them."""

from __future__ import annotations

from dataclasses import dataclass, field


class PullError(Exception):
    """A pull that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Remote:
    ref: str  # the reference pulled, as written
    url: str
    file_name: str
    size: int | None
    sha256: str | None  # lower-case hex
    headers: dict[str, str] = field(default_factory=dict)
