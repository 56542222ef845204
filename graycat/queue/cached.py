"""A value read from Redis and reused for a moment; when it is due, one caller reads it again while the callers
that ask meanwhile wait for that read instead of each making their own (under load, each of them used to: at
1,000 requests/s, a read of the live workers taking a few milliseconds was repeated by every request arriving
during it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Cached(Generic[T]):
    """`read()`'s value, read again when older than `ttl` seconds (`fresh`: now, whatever its age)."""

    def __init__(self, read: Callable[[], Awaitable[T]], ttl: float, empty: T) -> None:
        self._read = read
        self._ttl = ttl
        self._value = empty
        self._at = -ttl - 1.0  # when the value was read (monotonic); due from the start
        self._lock = asyncio.Lock()

    async def get(self, *, fresh: bool = False) -> T:
        if fresh:
            return await self._reread()
        if time.monotonic() - self._at <= self._ttl:
            return self._value
        async with self._lock:  # the first caller reads; the others find the value it read
            if time.monotonic() - self._at > self._ttl:
                return await self._reread()
        return self._value

    async def _reread(self) -> T:
        now = time.monotonic()
        self._value = await self._read()
        self._at = now
        return self._value
