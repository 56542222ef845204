"""The api's named Redis functions in graycat/queue on a real Redis, in process: idempotency keys, the
dead-letter stream, conversation sessions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from graycat.queue import dead_letters, idempotency, keys, session_store
from graycat.queue.connection import connect
from tests.conftest import RedisServer


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_server.url)
    yield client
    await client.aclose()


async def test_an_idempotency_key_names_its_first_job_until_forgotten(redis: aioredis.Redis) -> None:
    owner, key = uuid.uuid4().hex[:12], "retry-me"
    assert await idempotency.claim(redis, owner, key, "job-1") is None
    assert await idempotency.claim(redis, owner, key, "job-2") == "job-1"
    assert await idempotency.claim(redis, "another-owner", key, "job-3") is None  # keys are per token
    assert 0 < await redis.ttl(keys.idempotency(owner, key)) <= idempotency.TTL_S
    await idempotency.forget(redis, owner, key)
    assert await idempotency.claim(redis, owner, key, "job-4") is None


async def test_dead_letters_are_listed_newest_first_read_and_dropped(redis: aioredis.Redis) -> None:
    before = await dead_letters.length(redis)
    first = (await redis.xadd(keys.DEAD, {"id": "a", "reason": "crashed"})).decode()
    second = (await redis.xadd(keys.DEAD, {"id": "b", "reason": "lost"})).decode()
    assert await dead_letters.length(redis) == before + 2
    assert [(e.decode(), f[b"id"]) for e, f in await dead_letters.newest(redis, 2)] == [(second, b"b"), (first, b"a")]
    assert await dead_letters.fields(redis, first) == {b"id": b"a", b"reason": b"crashed"}
    assert await dead_letters.drop(redis, first)
    assert not await dead_letters.drop(redis, first)
    assert await dead_letters.fields(redis, first) is None
    assert await dead_letters.drop(redis, second)
    assert await dead_letters.length(redis) == before


async def test_a_session_keeps_its_turns_and_last_worker_until_forgotten(redis: aioredis.Redis) -> None:
    owner, sid = uuid.uuid4().hex[:12], "chat"
    limits = session_store.SessionLimits(ttl=60, max_messages=3, max_bytes=1 << 20, max_token_bytes=1 << 20)
    assert await session_store.history_and_worker(redis, owner, sid) == ([], None)
    turns = [b'{"role":"user","content":"%d"}' % i for i in range(4)]
    assert await session_store.append(redis, owner, sid, turns[:2], "w-1", limits, 1.0) == 0
    assert await session_store.append(redis, owner, sid, turns[2:], "w-2", limits, 2.0) == 0
    assert await session_store.history_and_worker(redis, owner, sid) == (turns[1:], "w-2")  # the last 3 kept
    assert await session_store.history(redis, owner, sid) == turns[1:]
    await session_store.forget(redis, owner, sid)
    assert await session_store.history_and_worker(redis, owner, sid) == ([], None)
    assert not await redis.zscore(keys.sessions_of(owner), sid)
