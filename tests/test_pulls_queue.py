"""Model pull requests through Redis (graycat/queue/pulls.py), in process on a Redis of their own (a live worker
of the session would take requests meant for any worker): a worker's own requests before anyone's, each taken
once, one past its deadline dropped, a withdrawn one never taken, the events followed in order, and a worker's
stream recreated when it was lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from graycat.queue import keys, pulls
from graycat.queue.connection import connect
from tests.conftest import RedisServer, own_redis_server


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with own_redis_server(tmp_path_factory, "pulls-redis") as server:
        yield server


@pytest.fixture
async def redis(own_redis: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = connect(own_redis.url)
    await client.flushdb()
    yield client
    await client.aclose()


async def test_a_workers_own_requests_come_first_and_each_is_taken_once(redis: aioredis.Redis) -> None:
    anyone, _ = await pulls.ask(redis, "hf:o/any", worker=None, wait_s=60)
    mine, _ = await pulls.ask(redis, "hf:o/mine", worker="w1", wait_s=60)
    await pulls.prepare(redis, "w1")
    await pulls.prepare(redis, "w2")
    first = await pulls.take(redis, redis, "w1", 10)
    assert [r.ref for r in first] == ["hf:o/mine", "hf:o/any"] and first[0] == mine and first[1] == anyone
    assert await pulls.take(redis, redis, "w2", 10) == []  # taken: nobody else gets it
    assert await redis.xlen(keys.PULLS_ANY) == 0 and await redis.xlen(keys.pulls_of("w1")) == 0
    assert 0 < await redis.ttl(keys.pulls_of("w1")) <= pulls.LANE_TTL_S


async def test_late_and_withdrawn_requests_are_not_started(redis: aioredis.Redis) -> None:
    await pulls.prepare(redis, "w1")
    await pulls.ask(redis, "hf:o/late", worker=None, wait_s=-1)  # its deadline has passed
    _, entry = await pulls.ask(redis, "hf:o/withdrawn", worker="w1", wait_s=60)
    await pulls.withdraw(redis, "w1", entry)
    assert await pulls.take(redis, redis, "w1", 10) == []
    assert await redis.xlen(keys.PULLS_ANY) == 0


async def test_a_lost_stream_of_a_worker_is_made_again(redis: aioredis.Redis) -> None:
    await pulls.prepare(redis, "w1")
    await redis.delete(keys.pulls_of("w1"), keys.PULLS_ANY)  # expired, or Redis lost its data
    assert await pulls.take(redis, redis, "w1", 10) == []
    await pulls.ask(redis, "hf:o/after", worker="w1", wait_s=60)
    assert [r.ref for r in await pulls.take(redis, redis, "w1", 10)] == ["hf:o/after"]


async def test_events_are_followed_in_order(redis: aioredis.Redis) -> None:
    await pulls.report(redis, "p1", {"status": "pulling manifest"})
    await pulls.report(redis, "p1", {"status": "success", "model": "m"})
    events = pulls.follow(redis, "p1", block_ms=10)
    assert [await anext(events), await anext(events), await anext(events)] == [
        {"status": "pulling manifest"},
        {"status": "success", "model": "m"},
        None,  # nothing more yet
    ]
    await events.aclose()
    assert 0 < await redis.ttl(keys.pull_events("p1")) <= pulls.EVENTS_TTL_S
