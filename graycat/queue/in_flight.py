"""A token's places in flight (the sorted set its RATE_LIMIT_CONCURRENCY counts): the requests being answered
and the jobs not ended yet, each a member scored by when it took its place."""

from __future__ import annotations

import time

from graycat.queue import keys
from graycat.queue.resp import PipelinedConnection


async def hold(writer: PipelinedConnection, owner: str, member: str, ttl: int) -> str:
    """Give `member` a place among the owner's in flight, the set kept `ttl` seconds; the set's key."""
    key = keys.in_flight(owner)
    await writer.call("ZADD", key, repr(time.time()), member)
    await writer.call("EXPIRE", key, ttl)
    return key


async def release(writer: PipelinedConnection, key: str, member: str) -> None:
    """Free `member`'s place in the set at `key`."""
    await writer.call("ZREM", key, member)
