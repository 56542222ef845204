"""The jobs each pool completed minute by minute (the counters the workers bump in keys.pool_minute)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from graycat.queue import keys


async def completed(redis: aioredis.Redis, pools: list[tuple[str, str]], minutes: int) -> list[list[int]]:
    """Per (kind, model) pool, in one round trip: the jobs completed in each of the last `minutes` minutes, the
    current one (so far) last; an empty list for a pool whose counters could not be read."""
    minute = int(time.time() // 60)
    async with redis.pipeline(transaction=False) as pipe:
        for kind, model in pools:
            pipe.mget([keys.pool_minute(kind, model, minute - i) for i in range(minutes - 1, -1, -1)])
        replies = await pipe.execute(raise_on_error=False)
    return [[int(c or 0) for c in counts] if isinstance(counts, list) else [] for counts in replies]
