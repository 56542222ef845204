"""The dead-letter stream for admins: jobs that will not run again (their worker died at each delivery, or
their engine crashed on them), newest first; running one again as a new job of its owner, or dropping it."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from graycat.api.access.auth import TokenFirstRoute, require_admin
from graycat.api.errors import ApiError
from graycat.api.routes import json_response
from graycat.jobs import Job
from graycat.queue import dead_letters as stream
from graycat.queue.client import JobQueue
from graycat.queue.replies import text

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], route_class=TokenFirstRoute)

_ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}", re.ASCII)
_FIELDS = {
    "id": "job",
    "kind": "kind",
    "model": "model",
    "ep": "endpoint",
    "rid": "request_id",
    "o": "owner",
    "deliveries": "deliveries",
    "reason": "reason",
    "at": "at",
}


@router.get("/dead-letters", summary="Jobs kept in the dead-letter stream, newest first (never their bodies)")
async def dead_letters(request: Request, count: int = Query(50, ge=1, le=1000)) -> Response:
    redis = request.app.state.queue.redis
    found = []
    for entry_id, fields in await stream.newest(redis, count):
        item: dict[str, object] = {"entry": entry_id.decode()}
        for raw, name in _FIELDS.items():
            value = fields.get(raw.encode())
            item[name] = text(value) if value is not None else None
        item["deliveries"] = int(str(item["deliveries"])) if item["deliveries"] else None
        item["at"] = float(str(item["at"])) if item["at"] else None
        found.append(item)
    return json_response({"total": await stream.length(redis), "dead_letters": found})


@router.delete("/dead-letters/{entry}", summary="Drop one entry of the dead-letter stream")
async def drop(request: Request, entry: str) -> Response:
    if not _ENTRY_ID.fullmatch(entry) or not await stream.drop(request.app.state.queue.redis, entry):
        raise ApiError(404, f"no dead letter '{entry}'", code="dead_letter_not_found")
    return json_response({"dropped": entry})


@router.post(
    "/dead-letters/{entry}/retry",
    status_code=202,
    summary="Run a dead letter's job again: a new job of "
    "the same owner (who follows it with GET /jobs/{id}); the entry leaves the stream",
)
async def retry(request: Request, entry: str) -> Response:
    queue: JobQueue = request.app.state.queue
    found = await stream.fields(queue.redis, entry) if _ENTRY_ID.fullmatch(entry) else None
    if found is None:
        raise ApiError(404, f"no dead letter '{entry}'", code="dead_letter_not_found")
    old = Job.from_fields(found)
    job = Job(
        kind=old.kind,
        model=old.model,
        endpoint=old.endpoint,
        body=old.body,
        stream=old.stream,
        request_id=request.scope["request_id"],
        slots=old.slots,
    )
    await queue.enqueue(job, old.owner)
    await stream.drop(queue.redis, entry)
    return json_response({"id": job.id, "status_url": f"/jobs/{job.id}", "retried": entry}, 202)
