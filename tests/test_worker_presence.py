"""Dead workers noticed by their closed Redis connections (graycat/queue/presence.py), on a real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from graycat.jobs import Job
from graycat.queue import keys
from graycat.queue.client import JobQueue
from graycat.queue.connection import connect
from graycat.queue.consumer import Claimed, Consumer
from graycat.queue.hub import EventHub
from graycat.queue.presence import WorkerWatch
from graycat.queue.resp import PipelinedConnection
from tests.conftest import RedisServer

VISIBILITY_MS = 30_000


@dataclass
class Parts:
    queue: JobQueue
    watch: WorkerWatch
    a: Consumer
    b: Consumer
    model: str


@pytest.fixture
async def parts(redis_server: RedisServer) -> AsyncIterator[Parts]:
    model = f"m-{uuid.uuid4().hex[:8]}"
    redis, writer = connect(redis_server.url), PipelinedConnection(redis_server.url)
    hub = EventHub(redis_server.url, uuid.uuid4().hex)
    await hub.start()
    consumers = [
        Consumer(
            redis,
            connect(redis_server.url, blocking=True),
            PipelinedConnection(redis_server.url),
            f"w{n}-{model}",
            [("llm", model)],
            record_ttl=60,
        )
        for n in "ab"
    ]
    for consumer in consumers:
        await consumer.setup()
        await consumer.heartbeat({"kinds": ["llm"], "models": [model]}, keys.WORKER_TTL_S, [], {})
    yield Parts(JobQueue(redis, writer, hub, record_ttl=60), WorkerWatch(redis, writer), *consumers, model)
    for consumer in consumers:
        await consumer.reader.aclose()
        await consumer.events.close()
        await consumer.close()
    await hub.stop()
    await writer.close()
    await redis.aclose()


async def present(consumer: Consumer, heard: list[str]) -> asyncio.Task[None]:
    """Keep `consumer` subscribed to its presence channel (cancel the task: its connection closes)."""

    async def listen() -> None:
        async for worker_id in consumer.takeovers():
            heard.append(worker_id)

    task = asyncio.create_task(listen())
    for _ in range(500):
        if (await consumer.redis.pubsub_numsub(keys.alive(consumer.worker_id)))[0][1]:
            return task
        await asyncio.sleep(0.01)
    raise AssertionError("no presence subscription")


async def gone(consumer: Consumer, task: asyncio.Task[None]) -> None:
    """Close `consumer`'s presence subscription, as when its process dies, and wait until Redis has noticed."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for _ in range(500):
        if not (await consumer.redis.pubsub_numsub(keys.alive(consumer.worker_id)))[0][1]:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the presence subscription stayed")


async def running(p: Parts, consumer: Consumer) -> Claimed:
    """A job submitted, claimed and started by `consumer`."""
    await p.queue.submit(Job(kind="llm", model=p.model, endpoint="/completion", body=b"{}", stream=False))
    [claimed] = await consumer.claim(1, 1000)
    assert await consumer.start(claimed.job)
    return claimed


async def owner(p: Parts, claimed: Claimed) -> tuple[str, int]:
    """Who holds the entry, and how many times it was delivered."""
    [entry] = await p.queue.redis.xpending_range(claimed.pool, keys.GROUP, claimed.entry_id, claimed.entry_id, 1)
    return entry["consumer"].decode(), entry["times_delivered"]


async def test_a_worker_whose_connection_closed_loses_its_jobs_to_a_live_one(parts: Parts) -> None:
    p, heard = parts, []
    a_alive, b_alive = await present(p.a, []), await present(p.b, heard)
    claimed = await running(p, p.a)
    assert await p.watch.check() == {}
    await gone(p.a, a_alive)  # as when its process dies
    assert await p.watch.check() == {}  # absent once: perhaps a connection being replaced
    assert await p.watch.check() == {p.a.worker_id: 1}
    assert await owner(p, claimed) == (p.a.worker_id, 1)  # handed back: same owner and count until taken over
    assert not await p.queue.redis.exists(keys.worker(p.a.worker_id))
    [(taken, deliveries)] = await p.b.reclaim(1, VISIBILITY_MS)  # long before the visibility timeout
    assert taken.job.id == claimed.job.id and deliveries == 2
    await asyncio.sleep(0.1)
    assert heard == [p.a.worker_id]  # live workers were told to reclaim now
    # A worker that was only out of touch learns from its heartbeat that the job is not its own any more.
    assert await p.a.heartbeat({}, keys.WORKER_TTL_S, [claimed], {}) == [claimed]
    assert await owner(p, claimed) == (p.b.worker_id, 2)
    assert await p.b.heartbeat({}, keys.WORKER_TTL_S, [taken], {}) == []
    await gone(p.b, b_alive)


async def test_a_worker_back_before_its_jobs_were_taken_keeps_them(parts: Parts) -> None:
    p = parts
    a_alive = await present(p.a, [])
    claimed = await running(p, p.a)
    await p.watch.check()
    await gone(p.a, a_alive)
    await p.watch.check()
    assert await p.watch.check() == {p.a.worker_id: 1}
    assert await p.a.heartbeat({}, keys.WORKER_TTL_S, [claimed], {}) == []  # its next beat keeps the job
    assert await p.b.reclaim(1, VISIBILITY_MS) == []


async def test_only_workers_seen_present_on_the_current_connection_can_be_found_dead(parts: Parts) -> None:
    p = parts
    claimed = await running(p, p.a)
    for _ in range(3):  # never subscribed: unknown, not dead (it may be starting)
        assert await p.watch.check() == {}
    a_alive = await present(p.a, [])
    await p.watch.check()
    await p.watch.writer.close()  # as when Redis restarts or fails over: every connection is new
    await gone(p.a, a_alive)  # and workers are still reconnecting
    for _ in range(3):
        assert await p.watch.check() == {}
    assert await owner(p, claimed) == (p.a.worker_id, 1)


def record(p: Parts, **fields: object) -> dict[str, object]:
    return {"kinds": ["llm"], "models": [p.model], **fields}


async def test_a_worker_that_registered_subscribed_is_found_dead_though_never_seen_present(parts: Parts) -> None:
    """Workers subscribe before they register and say so: one killed a moment after it started, before any
    check saw it, still loses its jobs at once."""
    p = parts
    assert await p.watch.check() == {}  # absent once
    await p.a.heartbeat(record(p, present=True, heartbeat=time.time()), keys.WORKER_TTL_S, [], {})
    claimed = await running(p, p.a)
    assert await p.watch.check() == {p.a.worker_id: 1}
    [(taken, deliveries)] = await p.b.reclaim(1, VISIBILITY_MS)
    assert taken.job.id == claimed.job.id and deliveries == 2


async def test_a_worker_is_never_found_dead_unseen_unless_its_record_since_the_connection_says_so(parts: Parts) -> None:
    """A worker of a release without presence (no `present` in its record), one not subscribed when it beat, and
    one whose record predates the api's connection (it may not have reached a restarted Redis yet) keep their
    jobs until VISIBILITY_TIMEOUT."""
    p = parts
    await p.a.heartbeat(record(p, present=True, heartbeat=time.time()), keys.WORKER_TTL_S, [], {})
    await p.b.heartbeat(record(p, present=False, heartbeat=time.time() + 1), keys.WORKER_TTL_S, [], {})
    claimed = await running(p, p.a)
    for _ in range(4):  # a beat before the connection opened; b was not subscribed
        assert await p.watch.check() == {}
    await p.a.heartbeat(record(p, heartbeat=time.time() + 1), keys.WORKER_TTL_S, [], {})  # an older release
    for _ in range(4):
        assert await p.watch.check() == {}
    assert await owner(p, claimed) == (p.a.worker_id, 1)
    await p.a.heartbeat(record(p, present=True, heartbeat=time.time() + 1), keys.WORKER_TTL_S, [], {})
    assert {p.a.worker_id: 1} in [await p.watch.check() for _ in range(2)]  # the control: now it is found
