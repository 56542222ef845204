"""Per-token caps on what holds a Redis connection of this api process (job polls, open event streams), so that
one token never takes the connections every other token needs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from graycat.api.errors import ApiError


class TenantGate:
    """At most `limit` of one thing at a time per token, in this process (0: no limit)."""

    def __init__(self, what: str, setting: str, limit: int) -> None:
        self.what, self.setting, self.limit = what, setting, limit
        self._held: Counter[str] = Counter()

    def acquire(self, owner: str) -> Callable[[], None]:
        """Take a place for `owner` (429 when it has them all); returns the call that gives it back."""
        if self.limit and self._held[owner] >= self.limit:
            raise ApiError(
                429,
                f"this token already has {self.limit} {self.what} open ({self.setting}); close one or wait",
                code="too_many_concurrent_requests",
                headers={"Retry-After": "1"},
            )
        self._held[owner] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._held[owner] -= 1
                if not self._held[owner]:
                    del self._held[owner]

        return release

    @contextmanager
    def hold(self, owner: str) -> Iterator[None]:
        release = self.acquire(owner)
        try:
            yield
        finally:
            release()


class HeldStream(StreamingResponse):
    """A streaming response that gives its gate's place back however it ends."""

    def __init__(self, *args: object, release: Callable[[], None], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
