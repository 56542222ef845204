"""An api process adds up the requests it answers per token and day and writes them into the tokens' daily
usage once a second (queue/admission.RequestCounts), against a real Redis."""

from __future__ import annotations

import uuid

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from graycat.queue import keys
from graycat.queue.admission import RequestCounts
from graycat.queue.client import JobQueue
from graycat.queue.connection import connect
from graycat.queue.hub import EventHub
from graycat.queue.resp import PipelinedConnection
from tests.conftest import RedisServer

DAY = "2026-12-01"


async def test_counts_are_added_up_and_written_once(redis_server: RedisServer) -> None:
    owner, other = f"o-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    redis, writer = connect(redis_server.url), PipelinedConnection(redis_server.url)
    await writer.call("PING")
    counts = RequestCounts()
    for failed in (False, True, False, True, True):
        counts.add(owner, DAY, failed=failed)
    counts.add(other, DAY, failed=False)
    counts.write(writer)
    counts.write(writer)  # nothing new: nothing written twice
    await writer.call("PING")
    assert await redis.hgetall(keys.usage(owner, DAY)) == {b"requests": b"5", b"errors": b"3"}
    assert await redis.hgetall(keys.usage(other, DAY)) == {b"requests": b"1"}
    assert 0 < await redis.ttl(keys.usage(owner, DAY)) <= keys.USAGE_KEEP_S
    await writer.close()
    await redis.aclose()


async def test_counts_wait_for_the_next_write_when_redis_is_away(redis_server: RedisServer) -> None:
    owner = f"o-{uuid.uuid4().hex[:8]}"
    redis, writer = connect(redis_server.url), PipelinedConnection(redis_server.url)
    counts = RequestCounts()
    counts.add(owner, DAY, failed=True)
    with pytest.raises(RedisConnectionError):  # no live connection yet: nothing sent, nothing lost
        counts.write(writer)
    counts.add(owner, DAY, failed=False)
    await writer.call("PING")
    counts.write(writer)
    await writer.call("PING")
    assert await redis.hgetall(keys.usage(owner, DAY)) == {b"requests": b"2", b"errors": b"1"}
    await writer.close()
    await redis.aclose()


async def test_a_process_reads_the_requests_it_counted_at_once(redis_server: RedisServer) -> None:
    """`usage_of_day` (/admin/usage, /metrics) writes this process's counts before it reads: no second's lag."""
    owner = f"o-{uuid.uuid4().hex[:8]}"
    redis, writer = connect(redis_server.url), PipelinedConnection(redis_server.url)
    await writer.call("PING")
    queue = JobQueue(redis, writer, EventHub(redis_server.url, uuid.uuid4().hex), record_ttl=60)
    queue.count_request(owner, DAY, failed=True)
    queue.count_request(owner, DAY, failed=False)
    assert (await queue.usage_of_day(DAY))[owner] == {"requests": 2, "errors": 1}
    await writer.close()
    await redis.aclose()
