"""Run one job for one HTTP request and answer with its events: a JSON body or a live event stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from fastapi import Request
from starlette.responses import Response, StreamingResponse

from graycat.api.catalog import resolve_model
from graycat.api.dialects import JobSpec
from graycat.api.errors import ApiError
from graycat.jobs import CHUNK, END, START, Job, JobState, parse_end
from graycat.queue.client import JobQueue
from graycat.queue.hub import Subscription

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def run_job(request: Request, spec: JobSpec, *, kind: str, render_chunk: Callable[[bytes], bytes],
                  render_failure: Callable[[int, bytes], bytes] | None = None) -> Response:
    """Enqueue the request's body as a job and relay the answer.

    Errors the engine reports before the first token become a plain JSON error response, so a streaming
    client never sees an error inside its stream. `render_failure` gives the last event of a stream that
    fails midway (None: the stream just ends).
    """
    state = request.app.state
    queue: JobQueue = state.queue
    model = await resolve_model(queue, state.settings.default_model, spec)
    job = Job(kind=kind, model=model, endpoint=spec.endpoint, body=await request.body(), stream=spec.stream)
    sub = await queue.submit(job)
    deadline = asyncio.get_running_loop().time() + state.settings.job_timeout
    handed_over = False
    try:
        worker = await _wait_start(queue, sub, state.settings.queue_timeout, model)
        event = await _next(queue, sub, deadline)
        headers = {"X-Job-ID": job.id, "X-Worker-ID": worker}
        if event[:1] == END:
            status, body = parse_end(event[1:])
            return Response(body, status, headers=headers, media_type="application/json")
        handed_over = True
        stream = _stream(queue, sub, event, deadline, render_chunk, render_failure)
        return StreamingResponse(stream, headers={**SSE_HEADERS, **headers}, media_type="text/event-stream")
    finally:
        if not handed_over:
            queue.hub.close(sub)


async def _wait_start(queue: JobQueue, sub: Subscription, timeout: float, model: str) -> str:
    try:
        event = await sub.next(timeout)
    except TimeoutError:
        queue.cancel_soon(sub.job_id, JobState.EXPIRED)
        raise ApiError(503, f"no worker for model '{model}' took the request within {timeout:g} s; "
                       "start a worker for it or retry later", code="no_worker",
                       headers={"Retry-After": "5"}) from None
    except BaseException:
        queue.cancel_soon(sub.job_id)
        raise
    if event[:1] != START:
        raise AssertionError(f"job {sub.job_id}: expected a start event")
    return event[1:].decode()


async def _next(queue: JobQueue, sub: Subscription, deadline: float) -> bytes:
    try:
        async with asyncio.timeout_at(deadline):
            return await sub.queue.get()
    except TimeoutError:
        queue.cancel_soon(sub.job_id)
        raise ApiError(504, "the job ran past JOB_TIMEOUT and was cancelled", code="job_timeout") from None
    except BaseException:
        queue.cancel_soon(sub.job_id)
        raise


async def _stream(queue: JobQueue, sub: Subscription, first: bytes, deadline: float,
                  render_chunk: Callable[[bytes], bytes],
                  render_failure: Callable[[int, bytes], bytes] | None) -> AsyncIterator[bytes]:
    """Yield one event per write; closing the stream early (client gone) cancels the job."""
    finished = False
    event = first
    try:
        while True:
            if event[:1] == CHUNK:
                yield render_chunk(event[1:])
            elif event[:1] == END:
                finished = True
                status, body = parse_end(event[1:])
                if status >= 400 and render_failure is not None:
                    yield render_failure(status, body)
                return
            try:
                async with asyncio.timeout_at(deadline):
                    event = await sub.queue.get()
            except TimeoutError:
                if render_failure is not None:
                    yield render_failure(504, b"the job ran past JOB_TIMEOUT")
                return
    finally:
        queue.hub.close(sub)
        if not finished:
            queue.cancel_soon(sub.job_id)
