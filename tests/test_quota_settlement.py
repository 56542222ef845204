"""Quota reservations on a real Redis: granted while they fit, and released (and settled) by whichever way the
job ends: finished by a worker, cancelled or expired while waiting."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from graycat.jobs import Job, JobState, Usage
from graycat.queue import keys, scripts
from graycat.queue.client import JobQueue
from graycat.queue.consumer import Consumer
from graycat.workers.usage import UNKNOWN
from tests.test_queue import parts  # noqa: F401  (the fixture)

DAY = time.strftime("%Y-%m-%d", time.gmtime())


@pytest.fixture
async def owner(parts: tuple[JobQueue, Consumer, str]) -> AsyncIterator[str]:  # noqa: F811
    yield uuid.uuid4().hex[:16]


async def reserve(queue: JobQueue, owner: str, job_id: str, want: int, unit: int = 0, limit: int = 100) -> int:
    granted, _, _ = await scripts.RESERVE.run(
        queue.writer,
        usage=keys.usage(owner, DAY),
        reserved=keys.reserved(owner, "completion_tokens"),
        field="completion_tokens",
        limit=limit,
        want=want,
        unit=unit,
        now=time.time(),
        lapses=time.time() + 60,
        job_id=job_id,
        ttl=60,
    )
    return granted


async def submit(queue: JobQueue, owner: str, model: str, want: int, unit: int = 0) -> tuple[Job, int]:
    job = Job(kind="llm", model=model, endpoint="/completion", body=b'{"prompt":"x"}', stream=False)
    granted = await reserve(queue, owner, job.id, want, unit)
    await queue.submit(
        job, owner, holds=("rsv_key", keys.reserved(owner, "completion_tokens"), "rsv", f"{job.id}:{granted}")
    )
    return job, granted


async def used(queue: JobQueue, owner: str) -> tuple[int, int]:
    """(completion tokens counted today, tokens still reserved)."""
    counted = int(await queue.redis.hget(keys.usage(owner, DAY), "completion_tokens") or 0)
    return counted, await queue.redis.zcard(keys.reserved(owner, "completion_tokens"))


async def test_reservations_fit_the_quota_or_are_refused(
    parts: tuple[JobQueue, Consumer, str],  # noqa: F811
    owner: str,
) -> None:
    queue, _, _ = parts
    assert await reserve(queue, owner, "a" * 32, 60) == 60
    assert await reserve(queue, owner, "b" * 32, 50) == 0  # 40 left: an exact amount must fit whole
    assert await reserve(queue, owner, "c" * 32, 1000, unit=3) == 39  # as much as is left, in whole prompts
    assert await reserve(queue, owner, "d" * 32, 1000, unit=1) == 1
    assert await reserve(queue, owner, "e" * 32, 1000, unit=1) == 0


async def run_reserved(
    stack: tuple[JobQueue, Consumer, str], owner: str, status: int, body: bytes, state: JobState, usage: Usage
) -> None:
    """Submit a job reserving 50 tokens, run it and end it with `status`, `state` and `usage`."""
    queue, consumer, model = stack
    await submit(queue, owner, model, 50)
    [claimed] = await consumer.claim(1, 1000)
    await consumer.start(claimed.job)
    await consumer.finish(claimed, status, body, state, usage=usage)


async def test_a_finished_job_counts_what_it_made_and_releases_its_reservation(
    parts: tuple[JobQueue, Consumer, str],  # noqa: F811
    owner: str,
) -> None:
    await run_reserved(parts, owner, 200, b"{}", JobState.COMPLETED, Usage(1, 12))
    assert await used(parts[0], owner) == (12, 0)


async def test_a_job_stopped_midway_that_cannot_say_what_it_made_counts_its_reservation(
    parts: tuple[JobQueue, Consumer, str],  # noqa: F811
    owner: str,
) -> None:
    await run_reserved(parts, owner, 499, b"", JobState.CANCELLED, Usage(completion_tokens=UNKNOWN))
    assert await used(parts[0], owner) == (50, 0)


async def test_a_job_that_never_ran_releases_its_reservation(
    parts: tuple[JobQueue, Consumer, str],  # noqa: F811
    owner: str,
) -> None:
    queue, _, model = parts
    cancelled, _ = await submit(queue, owner, model, 30)
    await queue.cancel(cancelled.id)
    assert await used(queue, owner) == (0, 0)
    await submit(queue, owner, model, 30)
    await queue.expire_waiting(lambda kind: -1)
    assert await used(queue, owner) == (0, 0)
    assert await reserve(queue, owner, "e" * 32, 100) == 100  # the whole quota is there again
