"""Run one job for one HTTP request and answer with its events: a JSON body or a live event stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

import orjson
from fastapi import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from graycat.api.access import quotas
from graycat.api.access.limits import check_job
from graycat.api.catalog import resolve_model
from graycat.api.dialects import JobSpec, Renderer
from graycat.api.dialects.paths import path_dialect
from graycat.api.errors import ApiError, error_body
from graycat.api.sessions import Session
from graycat.jobs import CHUNK, END, START, Job, JobState, parse_end
from graycat.metrics import ApiMetrics
from graycat.queue.client import JobQueue
from graycat.queue.hub import Subscription

log = logging.getLogger(__name__)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_GONE = b"\x00gone"  # internal events: the client went away / the job's deadline passed
_LATE = b"\x00late"


async def run_job(
    request: Request,
    spec: JobSpec,
    renderer: Renderer,
    *,
    kind: str,
    body: bytes | None = None,
    session: Session | None = None,
    job_id: str | None = None,
) -> Response:
    """Enqueue the request's body (or `body`, the engine request a dialect made of it) as a job and relay
    the answer, written by `renderer`.

    Errors the engine reports before the first token become a plain JSON error response, so a streaming
    client never sees an error inside its stream. A non-streamed job's chunks (progress events) are not
    relayed: other routes read them from its event stream. A `session`'s turn runs on its preferred worker
    when it can, and the session keeps its reply; `job_id` is the id to give the job.
    """
    if session is not None:
        renderer = _watched(renderer, session)
    queue: JobQueue = request.app.state.queue
    job, sub = await _enqueue(request, spec, kind, body, session.preferred if session else None, job_id)
    handed_over = False
    watcher = asyncio.create_task(_watch(request.receive, sub))  # a client that leaves cancels its job
    try:
        event, runner, deadline = await _first_output(request, job, sub)
        if session is not None and runner:
            session.started(runner)
        headers = {"X-Job-ID": job.id, "X-Worker-ID": runner}
        if event[:1] == END:
            status, answer = parse_end(event[1:])
            if renderer.answer is not None and status == 200:
                answer = renderer.answer(answer)
            elif status >= 400 and path_dialect(request.url.path) in _OWN_ERROR_SHAPES:
                answer = error_body(request.url.path, status, *_error(status, answer))
            return Response(answer, status, headers=headers, media_type="application/json")
        if renderer.event is None or renderer.stream_error is None:
            raise TypeError(f"{spec.endpoint} answers JSON only, yet its job streamed")
        handed_over = True
        return EventStream(
            queue,
            sub,
            event,
            deadline,
            spec,
            renderer.event,
            renderer.stream_error,
            {**SSE_HEADERS, **headers},
            renderer.media_type,
        )
    finally:
        watcher.cancel()
        if not handed_over:
            queue.hub.close(sub)


async def _enqueue(
    request: Request, spec: JobSpec, kind: str, body: bytes | None, worker: str | None, job_id: str | None
) -> tuple[Job, Subscription]:
    """Check the job against the caller's limits and quotas and submit it (to `worker`'s direct lane when
    named); its events come on the subscription."""
    state = request.app.state
    queue: JobQueue = state.queue
    model = await resolve_model(queue, state.settings.default_model, spec, kind, aliases=state.settings.model_aliases)
    await check_job(request, model, kind, spec.prompts)
    job = Job(
        kind=kind,
        model=model,
        endpoint=spec.endpoint,
        body=await request.body() if body is None else body,
        stream=spec.stream,
        request_id=request.scope["request_id"],
        slots=spec.prompts,
    )
    if job_id is not None:
        job.id = job_id
    hold = await quotas.reserve(request, job, spec, kind)
    if state.settings.log_prompts:
        log.info("job %s (request %s) body: %s", job.id, job.request_id, job.body[:4096].decode(errors="replace"))
    try:
        sub = await queue.submit(job, request.state.owner, worker, hold.fields() if hold else ())
    except BaseException:
        await quotas.release(queue, hold)
        raise
    return job, sub


async def _first_output(request: Request, job: Job, sub: Subscription) -> tuple[bytes, str, float]:
    """Wait for the job to start and give its first chunk (a streamed job's) or its end, the worker that ran
    it, and its deadline (loop time)."""
    state = request.app.state
    queue: JobQueue = state.queue
    metrics: ApiMetrics = state.metrics
    kind, model = job.kind, job.model
    now = asyncio.get_running_loop().time()
    deadline = now + state.settings.job_timeout_for(kind)
    queue_timeout = state.settings.queue_timeout_for(kind)

    def no_worker() -> ApiError:
        return ApiError(
            503,
            f"no worker for model '{model}' took the request within {queue_timeout:g} s; "
            "start a worker for it or retry later",
            code="no_worker",
            headers={"Retry-After": "5"},
        )

    # the job's start, or its end when it never started (expired, failed)
    event = await _event(queue, sub, now + queue_timeout, no_worker, JobState.EXPIRED)
    runner = ""
    if event[:1] == START:
        metrics.queue_waited(kind, model, asyncio.get_running_loop().time() - now)
    # (a second START: the worker died before answering and another took over)
    while event[:1] == START or (event[:1] == CHUNK and not job.stream):
        if event[:1] == START:
            runner = event[1:].decode()
        event = await _event(queue, sub, deadline, _too_long)
    if event[:1] == CHUNK:
        metrics.job_timing(metrics.first_token, kind, model, asyncio.get_running_loop().time() - now)
    return event, runner, deadline


def replayed(answer: Response, events: Callable[[bytes], bytes]) -> Response:
    """A whole JSON answer (a forced tool call's) sent as the event stream `events` makes of it, with the job's
    headers."""
    job_headers = {k: v for k, v in answer.headers.items() if k.startswith("x-")}
    return Response(events(bytes(answer.body)), headers=job_headers, media_type="text/event-stream")


def _watched(renderer: Renderer, session: Session) -> Renderer:
    """`renderer`, with the session collecting the reply it writes."""
    event = session.watch_stream(renderer.event) if renderer.event else None
    return replace(renderer, event=event, answer=session.watch_answer(renderer.answer))


async def _watch(receive: Receive, sub: Subscription) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    sub.queue.put_nowait(_GONE)


def _client_gone(queue: JobQueue, sub: Subscription) -> ApiError:
    queue.cancel_soon(sub.job_id)
    return ApiError(499, "the client closed the request", code="client_closed_request")


def _too_long() -> ApiError:
    return ApiError(504, "the job ran past JOB_TIMEOUT and was cancelled", code="job_timeout")


async def _event(
    queue: JobQueue,
    sub: Subscription,
    deadline: float,
    late: Callable[[], ApiError],
    late_state: JobState = JobState.CANCELLED,
) -> bytes:
    """The job's next event before `deadline` (loop time). Past it the job ends in `late_state` and the error
    `late()` makes is raised; a client that left cancels it."""
    try:
        event = await sub.next(deadline - asyncio.get_running_loop().time())
    except TimeoutError:
        queue.cancel_soon(sub.job_id, late_state)
        raise late() from None
    except BaseException:
        queue.cancel_soon(sub.job_id)
        raise
    if event == _GONE:
        raise _client_gone(queue, sub)
    return event


class EventStream(Response):
    """A live event stream written straight to the ASGI server: one write per event, each its own HTTP chunk.

    One timer (the job's deadline) and one watcher (the client disconnecting) per stream feed the same
    queue as the job's events, so the per-event path is a queue read and a send. Ending early (client gone,
    deadline) cancels the job. When the worker dies midway and another takes the job over from the start, a
    deterministic request continues seamlessly (the chunks already sent are skipped); any other ends with an
    error event.
    """

    def __init__(
        self,
        queue: JobQueue,
        sub: Subscription,
        first: bytes,
        deadline: float,
        spec: JobSpec,
        render_chunk: Callable[[bytes], bytes],
        render_failure: Callable[[int, str], bytes],
        headers: dict[str, str],
        media_type: str,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.media_type = media_type
        self.init_headers({"content-type": media_type, **headers})  # as given: no charset added to text/ types
        self._queue, self._sub, self._first, self._deadline = queue, sub, first, deadline
        self._deterministic = spec.deterministic
        self._render_chunk, self._render_failure = render_chunk, render_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        events = self._sub.queue
        loop = asyncio.get_running_loop()
        timer = loop.call_at(self._deadline, events.put_nowait, _LATE)
        watcher = loop.create_task(_watch(receive, self._sub))
        finished = False
        sent = skip = 0
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            event = self._first
            while True:
                kind = event[:1]
                if kind == CHUNK:
                    if skip:
                        skip -= 1
                    else:
                        if out := self._render_chunk(event[1:]):
                            await send({"type": "http.response.body", "body": out, "more_body": True})
                        sent += 1
                elif kind == START and self._deterministic:  # taken over: the rerun repeats what was sent
                    skip = sent
                else:
                    break
                event = await events.get()
            if event == _GONE:
                return
            if event[:1] == END:
                finished = True
                status, body = parse_end(event[1:])
                tail = self._render_failure(status, _error(status, body)[0]) if status >= 400 else b""
            elif event == _LATE:
                tail = self._render_failure(504, "the job ran past JOB_TIMEOUT and was cancelled")
            else:  # START: the worker stopped midway and the output cannot be continued
                tail = self._render_failure(502, "the worker running this request stopped midway; retry it")
            await send({"type": "http.response.body", "body": tail, "more_body": False})
        finally:
            timer.cancel()
            watcher.cancel()
            self._queue.hub.close(self._sub)
            if not finished:
                self._queue.cancel_soon(self._sub.job_id)


_OWN_ERROR_SHAPES = frozenset({"ollama", "anthropic", "a1111"})
"""Dialects whose clients read an error shape other than a job's own (llama.cpp's, which OpenAI's clients read
too): a failed job's body is rewritten in theirs."""


def _error(status: int, body: bytes) -> tuple[str, str | None]:
    """The message and `type` (e.g. engine_crashed) of a job's error body (llama.cpp's and OpenAI's shapes),
    read once; the body itself as the message when it is not one."""
    try:
        error = orjson.loads(body)["error"]
        kind = error.get("type")
        return str(error["message"]), kind if isinstance(kind, str) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return body.decode(errors="replace") or f"failed with status {status}", None
