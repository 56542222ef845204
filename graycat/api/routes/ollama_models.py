"""Ollama's model management on the gateway, admin tokens only: `POST /api/pull` (progress streamed in Ollama's
NDJSON), `POST /api/copy` and `DELETE /api/delete`. A pull is done by a worker, onto its own disk, through the
queue (graycat/queue/pulls.py): the worker named in the request (`worker`, an extension), else the first free
LLM worker that takes pulls; that worker then serves the model. Copy and delete go the same way to every live
worker serving the model, each acting on its own disk (answering per worker); a model no worker serves is
looked for in the api's models folder (GRAYCAT_MODELS_DIR). Names are Hub references as Ollama writes them
(`hf.co/OWNER/REPO:QUANT`), the `hf:` form, or URLs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from graycat.api.access.auth import require_admin
from graycat.api.dialects import ollama
from graycat.api.errors import ApiError
from graycat.api.json_body import JsonBodyRoute
from graycat.api.routes import json_response
from graycat.queue import pulls
from graycat.queue.client import JobQueue
from graycat.store import folder
from graycat.store.hub import IMAGE_WEIGHTS
from graycat.store.refs import HubRef, parse
from graycat.store.remote import PullError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["Ollama"], dependencies=[Depends(require_admin)], route_class=JsonBodyRoute)
START_GRACE_S = 60.0  # past the wait for a worker to take a pull: for it to list the repository and answer
ALIVE_CHECK_S = 5.0  # how often a pull's worker is looked for among the live ones while it reports nothing


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="hf.co/OWNER/REPO[:QUANT], hf:OWNER/REPO/path/file.gguf or a URL.")
    name: str | None = Field(None, description="The older spelling of `model`.")
    insecure: bool = False
    stream: bool = True
    worker: str | None = Field(
        None, description="The id of the worker to pull it and serve it (default: the first free one that takes pulls)."
    )


class CopyRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str = Field(min_length=1)
    destination: str = Field(min_length=1)


class DeleteRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    name: str | None = Field(None, description="The older spelling of `model`.")


def _line(event: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in event.items() if k != "code"}) + b"\n"


@router.post("/pull", summary="Have a worker download a GGUF model and serve it (Ollama; admin token)")
async def pull(request: Request, body: PullRequest) -> Response:
    text = (body.model or body.name or "").strip()
    _check_ref(text)
    queue: JobQueue = request.app.state.queue
    worker = body.worker or None
    _check_takers(await queue.live_workers(), worker)
    wait_s = request.app.state.settings.queue_timeout_for("llm")
    asked, entry = await pulls.ask(queue.redis, text, worker=worker, wait_s=wait_s)
    events = pulls.follow(queue.redis, asked.id)
    first = await _first_event(events, asked.deadline + START_GRACE_S)
    if first is None:
        await pulls.withdraw(queue.redis, worker, entry)
        await events.aclose()
        takers = "worker " + worker if worker else "any worker that takes pulls"
        raise ApiError(
            503,
            f"no worker took the pull of {text} within {wait_s:g} s (QUEUE_TIMEOUT), asked of {takers}: "
            "each worker pulls one model at a time",
            code="no_worker",
        )
    if "error" in first:
        await events.aclose()
        raise ApiError(int(first.get("code") or 502), str(first["error"]), param="model")
    progress = _progress(queue, first, events)
    if body.stream:
        return StreamingResponse((_line(event) async for event in progress), media_type=ollama.NDJSON)
    last = [event async for event in progress][-1]
    if "error" in last:
        raise ApiError(int(last.get("code") or 502), str(last["error"]))
    return json_response(last)


def _check_ref(text: str) -> None:
    """400 for what is no reference this gateway pulls: a name of Ollama's library, an image model."""
    try:
        ref = parse(text)
    except PullError as exc:
        raise ApiError(exc.status, str(exc), param="model") from None
    if ref is None:
        raise ApiError(
            400,
            f"{text!r}: this server pulls from the Hugging Face Hub or a URL: name a model as "
            "hf.co/OWNER/REPO[:QUANT], hf:OWNER/REPO/path/file.gguf or https://...",
            param="model",
        )
    file = (ref.file or "") if isinstance(ref, HubRef) else ref.file_name
    if PurePosixPath(file).suffix.lower() in IMAGE_WEIGHTS:
        raise ApiError(
            400,
            f"{text!r} is an image model: /api/pull pulls GGUF text models; put image models in the SD workers' "
            "folder with `graycat pull --sd REF` (it has them read it again)",
            param="model",
        )


def _check_takers(live: list[dict[str, Any]], worker: str | None) -> None:
    """404 for a named worker that is not live, 409 for one that takes no pulls, 503 when none does."""
    takers = sorted(str(w["id"]) for w in live if w.get("pulls"))
    if worker is not None:
        named = next((w for w in live if w.get("id") == worker), None)
        if named is None:
            raise ApiError(
                404, f"no live worker {worker}; workers that take pulls: {', '.join(takers) or 'none'}", param="worker"
            )
        if not named.get("pulls"):
            raise ApiError(409, f"worker {worker} takes no pulls: {_why_not(named)}", param="worker")
    elif not takers:
        reasons = "; ".join(f"{w['id']}: {_why_not(w)}" for w in live) or "no worker is live"
        raise ApiError(
            503,
            f"no live worker takes pulls ({reasons}); start `graycat worker llm`, or run `graycat pull REF` where "
            "a worker reads its models",
            code="no_worker",
        )


def _why_not(worker: dict[str, Any]) -> str:
    if worker.get("kind") != "llm":
        return f"a {worker.get('kind')} worker"
    if worker.get("loading"):
        return "still loading its models (it takes pulls once ready)"
    return "it serves an external llama.cpp server or the null engine"


async def _first_event(events: AsyncGenerator[dict[str, Any] | None, None], deadline: float) -> dict[str, Any] | None:
    """The pull's first event, or None when no worker answered by `deadline`."""
    async for event in events:
        if event is not None:
            return event
        if time.time() > deadline:
            return None
    return None


async def _progress(
    queue: JobQueue, first: dict[str, Any], events: AsyncGenerator[dict[str, Any] | None, None]
) -> AsyncIterator[dict[str, Any]]:
    """The pull's events from `first` to its end (`success` or an error); an error as well when its worker
    stops reporting because it is gone."""
    worker, checked = str(first.get("worker")), time.monotonic()
    event: dict[str, Any] | None = first
    try:
        while True:
            if event is not None:
                yield event
                if "error" in event or event.get("status") == "success":
                    if "error" not in event:
                        await queue.served(fresh=True)  # the model is served at once by this api's requests
                    return
            elif time.monotonic() - checked > ALIVE_CHECK_S:
                checked = time.monotonic()
                if worker not in {w.get("id") for w in await queue.live_workers()}:
                    yield {
                        "error": f"worker {worker} stopped during the pull; what it received is kept on its "
                        "disk, and a pull there again resumes it",
                        "code": 502,
                    }
                    return
            event = await events.__anext__()
    finally:
        await events.aclose()


@router.delete("/delete", summary="Delete a model from the workers serving it (Ollama; admin token)")
async def delete(request: Request, body: DeleteRequest) -> Response:
    name = ollama.model_name(body.model or body.name) or ""
    if not name:
        raise ApiError(400, "name the model to delete (`model`)", param="model")
    queue: JobQueue = request.app.state.queue
    holders = await _holders(queue, name)
    done = await _on_workers(request, holders, "delete", name) if holders else {}
    ok = [worker for worker, (status, _) in done.items() if status == 200]
    answer: dict[str, Any] = {"status": "success", "workers": {w: detail for w, (_, detail) in done.items()}}
    if ok:
        gone = not (await queue.served(fresh=True)).kinds_of(name)
        message = f"model '{name}' was deleted (DELETE /api/delete)" + (
            " and no worker serves it now" if gone else f" from worker(s) {', '.join(ok)}"
        )
        answer["waiting_jobs_ended"] = await queue.fail_waiting(name, ok, 404, message, in_pools=gone)
    _fail_unless_all(done)  # a file a worker keeps (it was started with it) stays in a folder shared with it too
    models: Path = request.app.state.settings.models_folder()
    found = folder.find(models, name)
    if found is not None:  # the gateway's own folder (under `graycat up`, the one its worker read: deleted there)
        folder.remove(found)
        answer["gateway"] = f"deleted {found.path.name} from the gateway's models folder"
    elif not done:
        raise ApiError(404, f"model '{name}' not found: no live worker serves it, nor is it in the models folder")
    return json_response(answer)


@router.post("/copy", summary="Copy a model under another name, on the workers serving it (Ollama; admin token)")
async def copy(request: Request, body: CopyRequest) -> Response:
    source, destination = ollama.model_name(body.source) or "", ollama.model_name(body.destination) or ""
    try:
        folder.check_name(destination)
    except ValueError as exc:
        raise ApiError(400, str(exc), param="destination") from None
    queue: JobQueue = request.app.state.queue
    if (await queue.served(fresh=True)).kinds_of(destination):
        raise ApiError(409, f"a model {destination} is served already", param="destination")
    holders = await _holders(queue, source)
    if holders:
        done = await _on_workers(request, holders, "copy", source, destination)
        _fail_unless_all(done)
        await queue.served(fresh=True)
        return json_response({"status": "success", "workers": {w: detail for w, (_, detail) in done.items()}})
    models: Path = request.app.state.settings.models_folder()
    found = folder.find(models, source)
    if found is None:
        raise ApiError(
            404, f"model '{source}' not found: no live worker serves it, nor is it in the models folder", param="source"
        )
    try:
        target = await asyncio.to_thread(folder.copy, found, destination)
    except FileExistsError as exc:
        raise ApiError(409, str(exc), param="destination") from None
    return json_response({"status": "success", "gateway": f"copied {found.path.name} to {target.name}"})


async def _holders(queue: JobQueue, name: str) -> list[dict[str, Any]]:
    """The heartbeats of the live workers serving `name`."""
    return sorted((w for w in await queue.live_workers() if name in w.get("models", [])), key=lambda w: str(w["id"]))


async def _on_workers(
    request: Request, holders: list[dict[str, Any]], action: str, name: str, destination: str = ""
) -> dict[str, tuple[int, str]]:
    """Have each worker of `holders` do `action` on `name` (through its pull requests' stream), all at once:
    per worker, the HTTP status that tells how it went and what it said."""
    queue: JobQueue = request.app.state.queue
    wait_s = request.app.state.settings.queue_timeout_for("llm")

    async def on(worker: dict[str, Any]) -> tuple[int, str]:
        worker_id = str(worker["id"])
        if not worker.get("pulls"):
            return 409, f"it cannot {action} models: {_why_not(worker)}"
        if worker.get("stopping"):
            return 503, f"it is stopping, so it does no {action}; ask again once it is back"
        asked, entry = await pulls.ask(
            queue.redis, name, worker=worker_id, wait_s=wait_s, action=action, destination=destination
        )
        events = pulls.follow(queue.redis, asked.id)
        try:
            event = await _first_event(events, asked.deadline + START_GRACE_S)
        finally:
            await events.aclose()
        if event is None:
            await pulls.withdraw(queue.redis, worker_id, entry)
            return 504, f"it did not answer within {wait_s:g} s (QUEUE_TIMEOUT; it pulls one model at a time)"
        if "error" in event:
            return int(event.get("code") or 502), str(event["error"])
        return 200, str(event.get("detail") or "done")

    outcomes = await asyncio.gather(*(on(w) for w in holders))
    log.info("%s of %s on %s: %s", action, name, ", ".join(str(w["id"]) for w in holders), outcomes)
    return {str(w["id"]): outcome for w, outcome in zip(holders, outcomes, strict=True)}


def _fail_unless_all(done: dict[str, tuple[int, str]]) -> None:
    """The error of a delete or copy that some worker could not do (the first one's status), saying what each
    worker did."""
    failed = [status for status, _ in done.values() if status != 200]
    if failed:
        said = "; ".join(f"worker {w}: {detail}" for w, (_, detail) in done.items())
        raise ApiError(failed[0], said, param="model")
