"""The queue on a real Redis, with no engine: ordering, slots, cancel, replay after a lost connection."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from graycat import redis_server as server_binaries
from graycat.jobs import CHUNK, END, START, Job, JobState, parse_end
from graycat.queue import keys
from graycat.queue.client import JobQueue, QueueFull
from graycat.queue.connection import connect
from graycat.queue.consumer import Consumer
from graycat.queue.hub import EventHub
from graycat.queue.resp import PipelinedConnection
from tests.conftest import RedisServer, free_port, own_redis_server


@pytest.fixture
async def parts(redis_server: RedisServer) -> AsyncIterator[tuple[JobQueue, Consumer, str]]:
    model = f"m-{uuid.uuid4().hex[:8]}"  # a pool of its own
    redis, reader = connect(redis_server.url), connect(redis_server.url, blocking=True)
    hub = EventHub(redis_server.url, uuid.uuid4().hex)
    await hub.start()
    await asyncio.wait_for(hub.connected.wait(), 5)
    events = PipelinedConnection(redis_server.url)
    consumer = Consumer(redis, reader, events, f"w-{model}", [("llm", model)], record_ttl=60)
    await consumer.setup()
    writer = PipelinedConnection(redis_server.url)
    yield JobQueue(redis, writer, hub, record_ttl=60), consumer, model
    await writer.close()
    await hub.stop()
    await redis.aclose()
    await reader.aclose()
    await events.close()
    await consumer.close()


def job(model: str, stream: bool = True) -> Job:
    return Job(kind="llm", model=model, endpoint="/completion", body=b'{"prompt":"x"}', stream=stream)


async def test_events_arrive_in_order_and_the_record_follows(parts: tuple[JobQueue, Consumer, str]) -> None:
    queue, consumer, model = parts
    sub = await queue.submit(job(model))
    [claimed] = await consumer.claim(4, 1000)
    assert claimed.job.id == sub.job_id and claimed.job.body == b'{"prompt":"x"}'
    assert await consumer.start(claimed.job)
    for i in range(50):
        consumer.emit(claimed.job, [CHUNK + b"%d" % i])
    await consumer.finish(claimed, 200, b"", JobState.COMPLETED)
    events = [await sub.next(2) for _ in range(52)]
    assert events[0] == START + consumer.worker_id.encode()
    assert events[1:51] == [CHUNK + b"%d" % i for i in range(50)]
    assert events[51][:1] == END and parse_end(events[51][1:]) == (200, b"")
    record = await queue.redis.hgetall(keys.job(sub.job_id))
    assert record[b"state"] == b"completed" and record[b"worker"] == consumer.worker_id.encode()
    assert 0 < await queue.redis.ttl(keys.job(sub.job_id)) <= 60
    assert await queue.redis.xlen(keys.pool("llm", model)) == 0  # acknowledged and removed


async def test_claim_takes_no_more_than_the_free_slots(parts: tuple[JobQueue, Consumer, str]) -> None:
    queue, consumer, model = parts
    for _ in range(5):
        await queue.submit(job(model))
    assert len(await consumer.claim(2, 100)) == 2
    assert len(await consumer.claim(10, 100)) == 3
    assert await consumer.claim(10, 50) == []


async def test_a_job_cancelled_while_waiting_is_never_handed_to_a_worker(parts: tuple[JobQueue, Consumer, str]) -> None:
    queue, consumer, model = parts
    sub = await queue.submit(job(model))
    await queue.cancel(sub.job_id)
    assert await consumer.claim(1, 100) == []
    assert await queue.redis.xlen(keys.pool("llm", model)) == 0
    assert await queue.redis.hget(keys.job(sub.job_id), "state") == b"cancelled"
    end = await sub.next(2)  # its client hears the end (once), and the event stream holds it
    assert end[:1] == END and parse_end(end[1:])[0] == 499
    await asyncio.sleep(0.1)
    assert sub.queue.empty()


async def test_jobs_waiting_for_a_deleted_model_end_with_its_error(parts: tuple[JobQueue, Consumer, str]) -> None:
    """DELETE /api/delete: the jobs no worker was handed yet (in the pool, in the deleting worker's direct lane)
    end with the error given; a running job and another worker's lane are left alone."""
    queue, consumer, model = parts
    running = await queue.submit(job(model))
    [claimed] = await consumer.claim(1, 1000)
    assert claimed.job.id == running.job_id and await consumer.start(claimed.job)
    waiting = [await queue.submit(job(model)) for _ in range(2)]
    mine = await queue.submit(job(model), worker=consumer.worker_id)
    other = await queue.submit(job(model), worker="w-elsewhere")
    await queue.redis.sadd(keys.DIRECT_LANES, keys.direct_lane(consumer.worker_id, "llm", model))
    assert await queue.fail_waiting(model, [consumer.worker_id], 404, f"model '{model}' was deleted") == 3
    for sub in [*waiting, mine]:
        end = await sub.next(2)
        status, body = parse_end(end[1:])
        assert (end[:1], status) == (END, 404) and orjson.loads(body)["error"][
            "message"
        ] == f"model '{model}' was deleted"
        assert await queue.redis.hget(keys.job(sub.job_id), "state") == b"failed"
    assert await queue.redis.hget(keys.job(running.job_id), "state") == b"active"
    assert await queue.redis.hget(keys.job(other.job_id), "state") == b"pending"
    assert await consumer.claim(5, 50) == []  # none of them is handed out
    # only the lanes of the workers that deleted it, while others still serve the model
    again = await queue.submit(job(model))
    assert await queue.fail_waiting(model, [consumer.worker_id], 404, "gone", in_pools=False) == 0
    assert await queue.redis.hget(keys.job(again.job_id), "state") == b"pending"


async def test_a_lane_removed_while_a_claim_waits_is_recreated(parts: tuple[JobQueue, Consumer, str]) -> None:
    """The janitor moves a worker's direct lane to the pool when its heartbeat lapses (RESCUE_LANE deletes the
    stream): a claim blocked on it ends empty instead of raising, and the lane serves again afterwards."""
    queue, consumer, model = parts
    waiting = asyncio.create_task(consumer.claim(1, 5000))
    await asyncio.sleep(0.2)
    await queue.redis.delete(keys.direct_lane(consumer.worker_id, "llm", model))
    assert await asyncio.wait_for(waiting, 2) == []
    sub = await queue.submit(job(model), worker=consumer.worker_id)
    [claimed] = await consumer.claim(1, 1000)
    assert claimed.job.id == sub.job_id and claimed.pool == keys.direct_lane(consumer.worker_id, "llm", model)


async def test_a_claim_on_a_lane_already_gone_recreates_it(parts: tuple[JobQueue, Consumer, str]) -> None:
    """NOGROUP before the claim blocks (the lane was rescued between two claims): the claim ends empty and the
    lane, with its group, serves again."""
    queue, consumer, model = parts
    lane = keys.direct_lane(consumer.worker_id, "llm", model)
    await queue.redis.delete(lane)
    assert await consumer.claim(1, 10) == []
    assert [g["name"] for g in await queue.redis.xinfo_groups(lane)] == [keys.GROUP.encode()]
    sub = await queue.submit(job(model), worker=consumer.worker_id)
    [claimed] = await consumer.claim(1, 1000)
    assert claimed.job.id == sub.job_id


async def test_a_reclaim_after_redis_lost_the_streams_recreates_them(parts: tuple[JobQueue, Consumer, str]) -> None:
    """Redis lost its data (a restart without persistence): the takeover scan meets NOGROUP, recreates this
    worker's streams and their group, and jobs queued afterwards are claimed."""
    queue, consumer, model = parts
    pool = keys.pool("llm", model)
    await queue.redis.delete(pool, keys.direct_lane(consumer.worker_id, "llm", model))
    assert await consumer.reclaim(5, 0) == []
    assert [g["name"] for g in await queue.redis.xinfo_groups(pool)] == [keys.GROUP.encode()]
    sub = await queue.submit(job(model))
    [claimed] = await consumer.claim(1, 1000)
    assert claimed.job.id == sub.job_id


async def test_a_claim_on_a_redis_that_cannot_take_writes_is_an_outage(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A master demoted by a failover answers READONLY (and one loading its data LOADING): the claim raises a
    connection error, which the worker's loop backs off on and retries, not a refusal that ends the worker."""
    with own_redis_server(tmp_path_factory, "readonly") as server:
        redis, events = connect(server.url), PipelinedConnection(server.url)
        consumer = Consumer(redis, connect(server.url, blocking=True), events, "w-ro", [("llm", "ro")], record_ttl=60)
        await consumer.setup()
        await redis.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # a replica of nobody: read-only
        with pytest.raises(RedisConnectionError, match="READONLY"):
            await consumer.claim(1, 10)
        await events.close()
        await redis.aclose()


async def test_a_job_cancelled_as_it_is_claimed_never_starts(parts: tuple[JobQueue, Consumer, str]) -> None:
    queue, consumer, model = parts
    sub = await queue.submit(job(model))
    [claimed] = await consumer.claim(1, 1000)
    await queue.cancel(sub.job_id)
    assert not await consumer.start(claimed.job)
    await consumer.finish(claimed, 499, b"", JobState.CANCELLED)
    assert await queue.redis.hget(keys.job(sub.job_id), "state") == b"cancelled"
    assert (await sub.next(2))[:1] == END


async def test_a_finished_job_cannot_answer_twice(parts: tuple[JobQueue, Consumer, str]) -> None:
    queue, consumer, model = parts
    sub = await queue.submit(job(model, stream=False))
    [claimed] = await consumer.claim(1, 1000)
    assert await consumer.start(claimed.job)
    await consumer.finish(claimed, 200, b'{"content":"one"}', JobState.COMPLETED)
    await consumer.finish(claimed, 200, b'{"content":"two"}', JobState.COMPLETED)
    assert (await sub.next(2))[:1] == START
    assert parse_end((await sub.next(2))[1:]) == (200, b'{"content":"one"}')
    await asyncio.sleep(0.2)
    assert sub.queue.empty()


async def test_hub_replays_what_it_missed_while_disconnected(parts: tuple[JobQueue, Consumer, str]) -> None:
    queue, consumer, model = parts
    sub = await queue.submit(job(model))
    [claimed] = await consumer.claim(1, 1000)
    await consumer.start(claimed.job)
    consumer.emit(claimed.job, [CHUNK + b"before"])
    assert (await sub.next(2))[:1] == START and await sub.next(2) == CHUNK + b"before"
    await queue.redis.client_kill_filter(_type="pubsub")  # cut the hub's connection
    consumer.emit(claimed.job, [CHUNK + b"during-1", CHUNK + b"during-2"])
    await consumer.finish(claimed, 200, b"", JobState.COMPLETED)
    got = [await sub.next(10) for _ in range(3)]
    assert got[:2] == [CHUNK + b"during-1", CHUNK + b"during-2"]
    assert got[2][:1] == END


async def test_a_released_job_goes_back_to_the_pool(parts: tuple[JobQueue, Consumer, str]) -> None:
    queue, consumer, model = parts
    sub = await queue.submit(job(model))
    [claimed] = await consumer.claim(1, 1000)
    await consumer.release(claimed)
    [again] = await consumer.claim(1, 1000)
    assert again.job.id == sub.job_id and again.entry_id != claimed.entry_id
    assert await queue.redis.hget(keys.job(sub.job_id), "state") == b"pending"


async def test_a_full_pool_refuses_at_once_with_a_retry_estimate(parts: tuple[JobQueue, Consumer, str]) -> None:
    queue, consumer, model = parts
    queue.max_waiting = 2
    await queue.submit(job(model))
    await queue.submit(job(model))
    with pytest.raises(QueueFull) as full:
        await queue.submit(job(model))
    assert full.value.waiting == 2 and full.value.retry_after == 30  # no throughput measured yet
    await consumer.claim(1, 100)  # a running job no longer waits
    await queue.submit(job(model))
    minute = int(time.time() // 60)
    await queue.redis.set(keys.pool_minute("llm", model, minute - 1), 60)  # 0.5 jobs/s over two minutes
    with pytest.raises(QueueFull) as full:
        await queue.submit(job(model))
    assert full.value.retry_after == 4  # 2 waiting / 0.5 per second


async def test_each_token_has_its_own_waiting_limit(parts: tuple[JobQueue, Consumer, str]) -> None:
    queue, consumer, model = parts
    queue.max_waiting_per_token = 2
    first = await queue.submit(job(model), "token-a")
    second = await queue.submit(job(model), "token-a")
    with pytest.raises(QueueFull) as full:
        await queue.submit(job(model), "token-a")
    assert full.value.per_token and full.value.waiting == 2
    await queue.submit(job(model), "token-b")  # another tenant is not blocked
    [claimed] = await consumer.claim(1, 100)
    assert claimed.job.id == first.job_id and await consumer.start(claimed.job)  # started: no longer waiting
    await queue.submit(job(model), "token-a")
    await queue.cancel(second.job_id)  # cancelled: no longer waiting
    await queue.submit(job(model), "token-a")
    with pytest.raises(QueueFull):
        await queue.submit(job(model), "token-a")


@pytest.mark.parametrize("binary", server_binaries.startable(), ids=lambda b: f"{b.name}-{b.version}")
async def test_a_dead_workers_job_is_taken_over_on_every_server(
    binary: server_binaries.ServerBinary, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Crash recovery (XAUTOCLAIM) on every server `graycat up` or the tests may start: the embedded Valkey and
    the system's redis-server when it is new enough."""
    with own_redis_server(tmp_path_factory, "server", binary.path) as server:
        redis, reader = connect(server.url), connect(server.url, blocking=True)
        events, writer = PipelinedConnection(server.url), PipelinedConnection(server.url)
        dead, alive = (
            Consumer(redis, reader, events, name, [("llm", "m")], record_ttl=60) for name in ("w-dead", "w-alive")
        )
        try:
            await dead.setup()
            await JobQueue(redis, writer, EventHub(server.url, "api"), record_ttl=60).enqueue(job("m"))
            [held] = await dead.claim(1, 1000)  # then its worker dies: no heartbeat, no ack
            await asyncio.sleep(0.3)
            [(taken, deliveries)] = await alive.reclaim(1, idle_ms=200)
            assert taken.job.id == held.job.id and taken.entry_id == held.entry_id and deliveries == 2
        finally:
            await writer.close()
            await events.close()
            await dead.close()
            await alive.close()
            await reader.aclose()
            await redis.aclose()


async def test_pools_are_known_without_scanning_the_keyspace(parts: tuple[JobQueue, Consumer, str]) -> None:
    """Status and the janitor read the registry of pools (job records, which grow with traffic, are never
    scanned): a queued job registers its pool, a live worker's pools are listed at once, pools from before the
    registry are found by the scan at start, and a pool deleted by hand leaves the registry."""
    queue, _, model = parts
    await queue.submit(job(model))
    assert keys.pool("llm", model) in await queue.pools()
    assert [p["waiting"] for p in await queue.pool_counters() if p["model"] == model] == [1]
    older = f"old-{model}"  # a pool made by an older release: only its stream exists
    await queue.redis.xadd(keys.pool("llm", older), {"id": "x"})
    assert keys.pool("llm", older) not in await queue.pools()
    await queue.register_pools(scan=True)
    assert keys.pool("llm", older) in await queue.pools()
    await queue.redis.delete(keys.pool("llm", older))
    assert older not in [p["model"] for p in await queue.pool_counters()]
    assert keys.pool("llm", older) not in await queue.pools()
    served = f"served-{model}"  # a live worker's pool, created by its setup, no job queued yet
    await queue.redis.xgroup_create(keys.pool("llm", served), keys.GROUP, id="0", mkstream=True)
    await queue.redis.set(keys.worker("w-served"), orjson.dumps({"kinds": ["llm"], "models": [served]}))
    await queue.redis.zadd(keys.WORKERS, {"w-served": time.time()})
    await queue.served(fresh=True)  # as the next read of the live workers' view (at most SERVED_CACHE_S later)
    assert served in [p["model"] for p in await queue.pool_counters()]
    await queue.redis.zrem(keys.WORKERS, "w-served")
