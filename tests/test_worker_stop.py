"""The worker's race between a Redis call and a stop request (graycat/workers/worker.py _unless_stopping), on a
bare event loop."""

from __future__ import annotations

import asyncio

from graycat.workers.worker import _unless_stopping


async def test_a_call_never_starts_once_the_stop_is_requested() -> None:
    stopping, ran = asyncio.Event(), []

    async def claim() -> list[str]:
        ran.append(True)
        return ["job"]

    stopping.set()
    assert await _unless_stopping(stopping, claim(), 5) is None
    assert not ran


async def test_a_pending_call_is_cancelled_by_the_stop() -> None:
    stopping, cancelled = asyncio.Event(), asyncio.Event()

    async def claim() -> list[str]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ["job"]

    asyncio.get_running_loop().call_later(0.05, stopping.set)
    assert await _unless_stopping(stopping, claim(), 5) is None
    assert cancelled.is_set()


async def test_jobs_that_arrive_with_the_stop_are_returned_not_dropped() -> None:
    stopping = asyncio.Event()
    reply: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()

    async def claim() -> list[str]:
        return await reply

    def both() -> None:  # Redis answers in the same loop tick as the stop request arrives
        stopping.set()
        reply.set_result(["job-1", "job-2"])

    asyncio.get_running_loop().call_later(0.05, both)
    assert await _unless_stopping(stopping, claim(), 5) == ["job-1", "job-2"]


async def test_an_unanswered_call_times_out() -> None:
    async def claim() -> list[str]:
        await asyncio.sleep(60)
        return []

    try:
        await _unless_stopping(asyncio.Event(), claim(), 0.05)
    except TimeoutError:
        return
    raise AssertionError("no TimeoutError")
