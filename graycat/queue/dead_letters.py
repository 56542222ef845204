"""The dead-letter stream: jobs that will not run again, kept for admins to read, run again or drop."""

from __future__ import annotations

import redis.asyncio as aioredis

from graycat.queue import keys
from graycat.queue.replies import Entries, entries


async def length(redis: aioredis.Redis) -> int:
    """How many entries the stream keeps."""
    return int(await redis.xlen(keys.DEAD))


async def newest(redis: aioredis.Redis, count: int) -> Entries:
    """The `count` newest entries, newest first."""
    return entries(await redis.xrevrange(keys.DEAD, count=count))


async def fields(redis: aioredis.Redis, entry: str) -> dict[bytes, bytes] | None:
    """One entry's fields, None when the stream has no such entry."""
    found = entries(await redis.xrange(keys.DEAD, entry, entry))
    return found[0][1] if found else None


async def drop(redis: aioredis.Redis, entry: str) -> bool:
    """Remove one entry; False when there was none."""
    return bool(await redis.xdel(keys.DEAD, entry))
