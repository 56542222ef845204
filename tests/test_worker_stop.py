"""The worker's race between a Redis call and a stop request (Worker._unless_stopping), on a bare event loop."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from graycat.workers.worker import Worker


def _worker() -> SimpleNamespace:
    return SimpleNamespace(_stopping=asyncio.Event())


async def test_a_call_never_starts_once_the_stop_is_requested() -> None:
    worker, ran = _worker(), []

    async def claim() -> list[str]:
        ran.append(True)
        return ["job"]

    worker._stopping.set()
    assert await Worker._unless_stopping(worker, claim(), 5) is None  # type: ignore[arg-type]
    assert not ran


async def test_a_pending_call_is_cancelled_by_the_stop() -> None:
    worker, cancelled = _worker(), asyncio.Event()

    async def claim() -> list[str]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ["job"]

    asyncio.get_running_loop().call_later(0.05, worker._stopping.set)
    assert await Worker._unless_stopping(worker, claim(), 5) is None  # type: ignore[arg-type]
    assert cancelled.is_set()


async def test_jobs_that_arrive_with_the_stop_are_returned_not_dropped() -> None:
    worker = _worker()
    reply: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    async def claim() -> list[str]:
        return await reply

    def both() -> None:  # Redis answers in the same loop tick as the stop request arrives
        worker._stopping.set()
        reply.set_result(["job-1", "job-2"])

    asyncio.get_running_loop().call_later(0.05, both)
    assert await Worker._unless_stopping(worker, claim(), 5) == ["job-1", "job-2"]  # type: ignore[arg-type]


async def test_an_unanswered_call_times_out() -> None:
    async def claim() -> list[str]:
        await asyncio.sleep(60)
        return []

    try:
        await Worker._unless_stopping(_worker(), claim(), 0.05)  # type: ignore[arg-type]
    except TimeoutError:
        return
    raise AssertionError("no TimeoutError")
