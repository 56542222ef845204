"""Image state in Redis: each token's A1111 options (chosen checkpoint, clip skip) and latest job, and the
PNGs served by URL for a while."""

from __future__ import annotations

from typing import cast

import orjson
import redis.asyncio as aioredis

from graycat.jobs import CHUNK, START
from graycat.queue import keys
from graycat.queue.replies import entries, text

OPTIONS_TTL_S = 30 * 24 * 3600


async def options(redis: aioredis.Redis, owner: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.image_options(owner))
    return {text(k): text(v) for k, v in raw.items()}


async def set_options(redis: aioredis.Redis, owner: str, values: dict[str, str]) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.image_options(owner), mapping=values)  # type: ignore[arg-type]
        pipe.expire(keys.image_options(owner), OPTIONS_TTL_S)
        await pipe.execute()


async def set_current(redis: aioredis.Redis, owner: str, job_id: str, ttl: int) -> None:
    await redis.set(keys.image_current(owner), job_id, ex=ttl)


async def current(redis: aioredis.Redis, owner: str) -> str | None:
    job_id = await redis.get(keys.image_current(owner))
    return text(job_id) if job_id else None


async def last_progress(redis: aioredis.Redis, job_id: str) -> bytes | None:
    """The job's latest progress chunk (its payload), b"" when it started without one yet, None before."""
    for _, fields in entries(await redis.xrevrange(keys.events(job_id), count=4)):
        event = fields[b"e"]
        if event[:1] == CHUNK:
            return event[1:]
        if event[:1] == START:
            return b""
    return None


PREVIEW_PAGE = 32  # events read per round trip looking back for the latest preview
PREVIEW_LOOKBACK = 512  # at most this many: previews come every SD_PREVIEW_EVERY steps


async def last_preview(redis: aioredis.Redis, job_id: str) -> str | None:
    """The latest live preview (base64 PNG) among the job's progress events, None before the first."""
    newest = "+"
    for _ in range(PREVIEW_LOOKBACK // PREVIEW_PAGE):
        page = entries(await redis.xrevrange(keys.events(job_id), max=newest, count=PREVIEW_PAGE))
        for _, fields in page:
            event = fields[b"e"]
            if event[:1] == START:
                return None
            if event[:1] == CHUNK and b'"preview"' in event:
                preview: str | None = orjson.loads(event[1:]).get("preview")
                return preview
        if len(page) < PREVIEW_PAGE:
            return None
        newest = "(" + page[-1][0].decode()
    return None


async def store_file(redis: aioredis.Redis, file_id: str, png: bytes, ttl: int) -> None:
    await redis.set(keys.image_file(file_id), png, ex=ttl)


async def load_file(redis: aioredis.Redis, file_id: str) -> bytes | None:
    data = await redis.get(keys.image_file(file_id))
    return None if data is None else cast(bytes, data)
