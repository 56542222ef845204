"""What a pull downloads: the file's URL, name, size and SHA-256 as its source states them."""

from __future__ import annotations

from dataclasses import dataclass, field


class PullError(Exception):
    """A pull that cannot go on; the message says why and what to do. `status`: the HTTP status that tells it
    (400 a bad reference, 404 nothing of that name, 502 the source failed, 507 no room)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Remote:
    ref: str  # the reference pulled, as written
    url: str
    file_name: str
    size: int | None
    sha256: str | None  # lower-case hex
    headers: dict[str, str] = field(default_factory=dict)
