"""Conversation sessions in Redis: each one's messages (JSON, oldest first) and the worker that answered its
last turn, and per token the sessions it keeps with their sizes (scripts.SESSION_APPEND bounds them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from graycat.queue import keys, scripts


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """How long a session lives idle (s), and the most it holds: messages, bytes, bytes of all the token's."""

    ttl: int
    max_messages: int
    max_bytes: int
    max_token_bytes: int


async def history(redis: aioredis.Redis, owner: str, sid: str) -> list[bytes]:
    return cast(list[bytes], await redis.lrange(keys.session(owner, sid), 0, -1))


async def history_and_worker(redis: aioredis.Redis, owner: str, sid: str) -> tuple[list[bytes], str | None]:
    """The session's messages and the worker that answered its last turn (None: no turn kept), in one trip."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.lrange(keys.session(owner, sid), 0, -1)
        pipe.get(keys.session_worker(owner, sid))
        messages, worker = await pipe.execute()
    return messages, worker.decode() if worker else None


async def forget(redis: aioredis.Redis, owner: str, sid: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.session(owner, sid), keys.session_worker(owner, sid))
        pipe.zrem(keys.sessions_of(owner), sid)
        pipe.hdel(keys.session_sizes(owner), sid)
        await pipe.execute()


async def append(
    redis: aioredis.Redis, owner: str, sid: str, messages: list[bytes], runner: str, limits: SessionLimits, now: float
) -> int:
    """Append `messages` to the session answered by `runner` (may be ""), within `limits`; how many of the
    token's oldest sessions were forgotten to stay within its bytes."""
    return await scripts.SESSION_APPEND.run(
        redis,
        session=keys.session(owner, sid),
        worker=keys.session_worker(owner, sid),
        sessions=keys.sessions_of(owner),
        sizes=keys.session_sizes(owner),
        ttl=limits.ttl,
        max_messages=limits.max_messages,
        max_bytes=limits.max_bytes,
        max_token_bytes=limits.max_token_bytes,
        now=now,
        sid=sid,
        runner=runner,
        owner=owner,
        messages=messages,
    )
