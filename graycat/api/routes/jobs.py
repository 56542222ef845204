"""The job API: submit now, read the state, the events and the result later, cancel."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response, StreamingResponse

from graycat.api.access import quotas
from graycat.api.access.auth import TokenFirstRoute, require_token
from graycat.api.access.limits import STATE_KEY, Caller, check_job
from graycat.api.access.parser_limits import check_request
from graycat.api.access.tenant_gates import HeldStream
from graycat.api.answer import SSE_HEADERS
from graycat.api.catalog import resolve_model
from graycat.api.dialects import JobSpec, llamacpp, openai, openai_tools
from graycat.api.errors import ApiError
from graycat.api.routes import json_response
from graycat.jobs import CHUNK, END, START, TERMINAL_STATES, Job, JobState, parse_end
from graycat.queue import idempotency, in_flight, job_events
from graycat.queue.client import JobQueue

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_token)], route_class=TokenFirstRoute)

_STREAM_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?", re.ASCII)
EVENTS_BLOCK_MS = 15_000

# route of the synchronous API -> (request model, job spec, kind)
ROUTES: dict[str, tuple[type[BaseModel], Callable[[Any], JobSpec], str]] = {
    "/completion": (llamacpp.CompletionRequest, llamacpp.completion_job, "llm"),
    "/v1/chat/completions": (openai.ChatCompletionRequest, openai.chat_job, "llm"),
    "/v1/completions": (openai.CompletionRequest, openai.completion_job, "llm"),
}


class JobRequest(BaseModel):
    route: str = Field(description=f"The API the body is written for: one of {', '.join(ROUTES)}")
    body: dict[str, Any] = Field(description="The request body, exactly as that route takes it")


async def _owned_record(request: Request, job_id: str) -> dict[str, str]:
    """The job's record; 404 for an unknown job or one another token created."""
    record = await request.app.state.queue.record(job_id) if len(job_id) == 32 and job_id.isalnum() else None
    if record is None or record.get("owner") != request.state.owner:
        raise ApiError(404, f"job '{job_id}' not found (or created with another token)", code="job_not_found")
    return record


@router.post("", status_code=202, summary="Submit a job; answer at once with its id and status URL")
async def submit(
    request: Request, job_request: JobRequest, idempotency_key: str | None = Header(None, max_length=200)
) -> Response:
    if job_request.route not in ROUTES:
        raise ApiError(422, f"route must be one of {', '.join(ROUTES)}", code="invalid_request", param="route")
    model_cls, make_spec, kind = ROUTES[job_request.route]
    try:
        parsed = model_cls.model_validate(job_request.body)
    except ValidationError as exc:  # reported like any invalid request body, with the path inside `body`
        raise RequestValidationError([{**e, "loc": ("body", "body", *e["loc"])} for e in exc.errors()]) from None
    check_request(request, parsed)
    if isinstance(parsed, openai.ChatCompletionRequest):
        openai_tools.check_tools(parsed.tools, parsed.tool_choice)
        openai_tools.check_tool_calls(parsed.messages)
    spec = make_spec(parsed)
    queue: JobQueue = request.app.state.queue
    model = await resolve_model(
        queue, request.app.state.settings.default_model, spec, aliases=request.app.state.settings.model_aliases
    )
    await check_job(request, model, kind, spec.prompts)
    job = Job(
        kind=kind,
        model=model,
        endpoint=spec.endpoint,
        body=orjson.dumps(job_request.body),
        stream=spec.stream,
        request_id=request.scope["request_id"],
        slots=spec.prompts,
    )
    owner = request.state.owner
    if idempotency_key:
        existing = await idempotency.claim(queue.redis, owner, idempotency_key, job.id)
        if existing is not None:
            return json_response({"id": existing, "status_url": f"/jobs/{existing}", "replayed": True}, 202)
    hold = flight = None
    try:
        hold = await quotas.reserve(request, job, spec, kind)
        flight = await _take_place(request, job)
        await queue.enqueue(job, owner, holds=(*(hold.fields() if hold else ()), *flight))
    except BaseException:
        await quotas.release(queue, hold)
        if flight:
            await in_flight.release(queue.writer, flight[1], job.id)
        if idempotency_key:
            await idempotency.forget(queue.redis, owner, idempotency_key)
        raise
    return json_response(
        {"id": job.id, "status_url": f"/jobs/{job.id}", "events_url": f"/jobs/{job.id}/events"},
        202,
        {"Location": f"/jobs/{job.id}"},
    )


async def _take_place(request: Request, job: Job) -> tuple[str, ...]:
    """A job of a token with a limit of requests in flight (RATE_LIMIT_CONCURRENCY or its own) holds a place
    until it ends, as a request does while it is answered: this request's place (admitted) passes to the job.
    The record fields that name the place (scripts.RELEASE_HOLDS), or none without a limit."""
    caller: Caller | None = request.scope.get("state", {}).get(STATE_KEY)
    if caller is None or not caller.concurrency:
        return ()
    queue: JobQueue = request.app.state.queue
    return ("flight_key", await in_flight.hold(queue.writer, caller.owner, job.id, queue.record_ttl))


@router.get("/{job_id}", summary="State, queue position, attempts, timings, and the result when done")
async def status(request: Request, job_id: str) -> Response:
    with request.app.state.job_polls.hold(request.state.owner):
        return await _status(request, job_id)


async def _status(request: Request, job_id: str) -> Response:
    queue: JobQueue = request.app.state.queue
    record = await _owned_record(request, job_id)
    info: dict[str, Any] = {
        "id": job_id,
        "state": record["state"],
        "kind": record["kind"],
        "model": record["model"],
        "route_endpoint": record.get("endpoint"),
        "attempts": int(record.get("attempts", 0)),
        "worker": record.get("worker"),
        "created": float(record["created"]),
        "started": float(record["started"]) if "started" in record else None,
        "finished": float(record["finished"]) if "finished" in record else None,
    }
    if record["state"] == JobState.PENDING and "entry" in record:
        info["position"] = await queue.position(record["kind"], record["model"], record["entry"])
    if record["state"] in TERMINAL_STATES:
        result = await queue.result(job_id)
        if result is not None:
            code, body = result
            info["status"] = code
            info["result"] = orjson.loads(body) if body else None
    return json_response(info)


@router.get("/{job_id}/events", summary="The job's events as Server-Sent Events, resumable with Last-Event-ID")
async def events(
    request: Request, job_id: str, last_event_id: str | None = Header(None, max_length=40)
) -> StreamingResponse:
    await _owned_record(request, job_id)
    start = last_event_id or request.query_params.get("from") or "0-0"
    if not _STREAM_ID.fullmatch(start) or any(int(part) >= 1 << 64 for part in start.split("-")):
        raise ApiError(
            422,
            "Last-Event-ID (or from) must be an event id this endpoint gave: two unsigned 64-bit "
            "integers, such as 1700000000000-0",
            code="invalid_request",
        )
    release = request.app.state.job_streams.acquire(request.state.owner)  # each open stream holds a connection
    return HeldStream(
        _events(request, job_id, start), media_type="text/event-stream", headers=SSE_HEADERS, release=release
    )


_NAMES = {START: "start", CHUNK: "chunk", END: "end"}


async def _events(request: Request, job_id: str, start: str) -> AsyncIterator[bytes]:
    reader = request.app.state.events_reader
    while True:
        found = await job_events.after(reader, job_id, start, block_ms=EVENTS_BLOCK_MS)
        if not found:
            if await request.app.state.queue.record(job_id) is None:
                return  # expired
            yield b": keep-alive\n\n"
            continue
        for entry_id, fields in found:
            start = entry_id.decode()
            event = fields[b"e"]
            kind = event[:1]
            data = event[1:]
            if kind == END:
                status, body = parse_end(data)
                data = orjson.dumps({"status": status, "body": orjson.loads(body) if body else None})
            elif kind == START:
                data = orjson.dumps({"worker": data.decode()})
            yield b"id: %s\nevent: %s\ndata: %s\n\n" % (entry_id, _NAMES.get(kind, "event").encode(), data)
            if kind == END:
                return


@router.delete("/{job_id}", summary="Cancel a waiting job at once, a running one within about a token")
async def cancel(request: Request, job_id: str) -> Response:
    queue: JobQueue = request.app.state.queue
    record = await _owned_record(request, job_id)
    if record["state"] not in TERMINAL_STATES:
        await queue.cancel(job_id)
    record = await _owned_record(request, job_id)
    return json_response({"id": job_id, "state": record["state"]})
