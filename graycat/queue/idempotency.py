"""Idempotency keys of job submissions: the first job submitted under a token's key is the one it names for
a day, so a client that retries a submission gets that job again instead of a second one."""

from __future__ import annotations

import redis.asyncio as aioredis

from graycat.queue import keys
from graycat.queue.replies import text

TTL_S = 24 * 3600


async def claim(redis: aioredis.Redis, owner: str, key: str, job_id: str) -> str | None:
    """Name `job_id` by the owner's `key`; None when it did, else the id of the job the key already names."""
    name = keys.idempotency(owner, key)
    if await redis.set(name, job_id, nx=True, ex=TTL_S):
        return None
    return text(await redis.get(name) or b"")


async def forget(redis: aioredis.Redis, owner: str, key: str) -> None:
    """Free the owner's `key` (its job could not be submitted)."""
    await redis.delete(keys.idempotency(owner, key))
