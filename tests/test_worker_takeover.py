"""A job taken over from a worker that stopped reaches the engine only if it is still wanted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from graycat.jobs import END, START, Job, parse_end
from graycat.queue import keys
from graycat.queue.client import JobQueue
from graycat.queue.connection import connect
from graycat.queue.consumer import Consumer
from graycat.queue.hub import EventHub, Subscription
from graycat.queue.resp import PipelinedConnection
from graycat.workers.engines.null import NullEngine
from graycat.workers.worker import Worker
from tests.conftest import RedisServer


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[JobQueue]:
    hub = EventHub(redis_server.url, uuid.uuid4().hex)
    await hub.start()
    await asyncio.wait_for(hub.connected.wait(), 5)
    redis, writer = connect(redis_server.url), PipelinedConnection(redis_server.url)
    yield JobQueue(redis, writer, hub, record_ttl=60)
    await hub.stop()
    await writer.close()
    await redis.aclose()


def consumer(url: str, name: str, model: str) -> Consumer:
    return Consumer(
        connect(url), connect(url, blocking=True), PipelinedConnection(url), name, [("llm", model)], record_ttl=60
    )


async def close(c: Consumer) -> None:
    await c.redis.aclose()
    await c.reader.aclose()
    await c.events.close()
    await c.close()


async def take_over(url: str, model: str, sub: Subscription) -> tuple[NullEngine, list[bytes]]:
    """Run a second worker until the job of `sub` has ended: its engine, and the events the client heard."""
    engine = NullEngine(model, slots=1)
    second = consumer(url, "w-second", model)
    worker = Worker(second, engine, visibility_timeout=0.1)
    running = asyncio.create_task(worker.run())
    try:
        events = [await sub.next(10)]
        while events[-1][:1] != END:
            events.append(await sub.next(10))
    finally:
        worker.stop()
        await running
        await close(second)
    return engine, events


@pytest.mark.parametrize("client_left", [True, False])
async def test_a_taken_over_job_runs_only_if_its_client_still_waits(
    redis_server: RedisServer, queue: JobQueue, client_left: bool
) -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    first = consumer(redis_server.url, "w-first", model)
    await first.setup()
    sub = await queue.submit(Job(kind="llm", model=model, endpoint="/completion", body=b'{"prompt":"x"}', stream=False))
    [claimed] = await first.claim(1, 1000)
    assert await first.start(claimed.job)  # it ran on a worker that then died
    await close(first)
    if client_left:
        await queue.cancel(sub.job_id)
    engine, events = await take_over(redis_server.url, model, sub)
    assert engine.stats()["served"] == (0 if client_left else 1)
    record = await queue.record(sub.job_id)
    assert record is not None and record["state"] == ("cancelled" if client_left else "completed")
    assert parse_end(events[-1][1:])[0] == (499 if client_left else 200)
    assert sum(e[:1] == START for e in events) == (1 if client_left else 2)
    assert await queue.redis.xlen(keys.pool("llm", model)) == 0
