"""A value cached for a moment (graycat/queue/cached.py): one read however many callers find it due."""

from __future__ import annotations

import asyncio

import pytest

from graycat.queue.cached import Cached


async def test_callers_arriving_during_a_read_share_it() -> None:
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return reads

    cached = Cached(read, ttl=60.0, empty=0)
    assert await asyncio.gather(*(cached.get() for _ in range(50))) == [1] * 50
    assert reads == 1
    assert await cached.get() == 1  # still fresh
    assert await cached.get(fresh=True) == 2  # asked fresh: read at once
    assert reads == 2


async def test_a_failed_read_is_tried_again_by_the_next_caller() -> None:
    answers: list[BaseException | int] = [ConnectionError("redis gone"), 7]

    async def read() -> int:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    cached = Cached(read, ttl=60.0, empty=0)
    with pytest.raises(ConnectionError):
        await cached.get()
    assert await cached.get() == 7
