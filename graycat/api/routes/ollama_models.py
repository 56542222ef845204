"""Ollama's model management on the gateway, admin tokens only: `POST /api/pull` (progress streamed in Ollama's
NDJSON), `POST /api/copy` and `DELETE /api/delete`. The api pulls into its own models folder
(GRAYCAT_MODELS_DIR): the folder its workers read under `graycat up`, or one shared with them; a worker serves a
pulled model when started with it (`--model NAME` or its reference). Names are Hub references as Ollama writes
them (`hf.co/OWNER/REPO:QUANT`), the `hf:` form, or URLs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response, StreamingResponse

from graycat.api.access.auth import require_admin
from graycat.api.dialects import ollama
from graycat.api.errors import ApiError
from graycat.api.json_body import JsonBodyRoute
from graycat.api.routes import json_response
from graycat.store import folder
from graycat.store.download import download
from graycat.store.refs import parse
from graycat.store.remote import PullError, Remote
from graycat.store.sources import locate

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["Ollama"], dependencies=[Depends(require_admin)], route_class=JsonBodyRoute)
PROGRESS_EVERY_S = 0.25


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="hf.co/OWNER/REPO[:QUANT], hf:OWNER/REPO/path/file.gguf or a URL.")
    name: str | None = Field(None, description="The older spelling of `model`.")
    insecure: bool = False
    stream: bool = True


class CopyRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str = Field(min_length=1)
    destination: str = Field(min_length=1)


class DeleteRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    name: str | None = Field(None, description="The older spelling of `model`.")


def _line(event: dict[str, object]) -> bytes:
    return orjson.dumps({k: v for k, v in event.items() if not k.startswith("_")}) + b"\n"


@router.post("/pull", summary="Download a GGUF model into the models folder (Ollama; admin token)")
async def pull(request: Request, body: PullRequest) -> Response:
    text = (body.model or body.name or "").strip()
    if parse(text) is None:
        raise ApiError(
            400,
            f"{text!r}: this server pulls from the Hugging Face Hub or a URL: name a model as "
            "hf.co/OWNER/REPO[:QUANT], hf:OWNER/REPO/path/file.gguf or https://...",
            param="model",
        )
    models: Path = request.app.state.settings.models_folder()
    try:
        found = await asyncio.to_thread(locate, text, models)
    except PullError as exc:
        raise ApiError(exc.status, str(exc), param="model") from None
    events = _pull_events(found, models)
    if body.stream:
        return StreamingResponse((_line(event) async for event in events), media_type=ollama.NDJSON)
    last = [event async for event in events][-1]
    if "error" in last:
        raise ApiError(int(str(last["_status"])), str(last["error"]))
    return json_response(last)


async def _pull_events(found: Path | Remote, models: Path) -> AsyncIterator[dict[str, object]]:
    """Ollama's progress lines for a file being downloaded (in a thread); the last is `success` or an error (with
    its HTTP status as `_status`, which is not sent)."""
    yield {"status": "pulling manifest"}
    if isinstance(found, Path):  # pulled before, and its source is out of reach now
        yield {"status": "success"}
        return
    digest = f"sha256:{found.sha256}" if found.sha256 else None
    status = f"pulling {found.sha256[:12]}" if found.sha256 else f"pulling {found.file_name}"
    loop = asyncio.get_running_loop()
    progress: asyncio.Queue[tuple[int, int | None]] = asyncio.Queue()
    shown = 0.0

    def report(done: int, total: int | None) -> None:
        nonlocal shown
        if time.monotonic() - shown >= PROGRESS_EVERY_S or done == total:
            shown = time.monotonic()
            loop.call_soon_threadsafe(progress.put_nowait, (done, total))

    task = asyncio.ensure_future(asyncio.to_thread(download, found, models, progress=report))
    try:
        while not task.done() or not progress.empty():
            with contextlib.suppress(TimeoutError):
                done, total = await asyncio.wait_for(progress.get(), 0.5)
                yield {
                    "status": status,
                    **({"digest": digest} if digest else {}),
                    "total": total or found.size or 0,
                    "completed": done,
                }
        path = task.result()
    except PullError as exc:
        yield {"error": str(exc), "_status": exc.status}
        return
    except OSError as exc:  # the models folder cannot be written
        yield {"error": f"cannot write to the models folder: {exc}", "_status": 500}
        return
    finally:
        if not task.done():  # the client left: the download goes on, and its end is logged
            task.add_done_callback(lambda t: _log_end(found.file_name, t))
    yield {"status": "verifying sha256 digest"}
    yield {"status": "writing manifest"}
    yield {"status": "success", "model": path.stem}


def _log_end(name: str, task: asyncio.Future[Path]) -> None:
    if task.cancelled() or task.exception() is None:
        log.info("pull of %s ended after its client left", name)
    else:
        log.warning("pull of %s failed after its client left: %s", name, task.exception())


@router.delete("/delete", summary="Delete a model from the models folder (Ollama; admin token)")
async def delete(request: Request, body: DeleteRequest) -> Response:
    name = ollama.model_name(body.model or body.name) or ""
    models: Path = request.app.state.settings.models_folder()
    found = folder.find(models, name)
    if found is None:
        raise ApiError(404, f"model '{name}' not found in the models folder", param="model")
    folder.remove(found)
    return Response(status_code=200)


@router.post("/copy", summary="Copy a model of the models folder under another name (Ollama; admin token)")
async def copy(request: Request, body: CopyRequest) -> Response:
    models: Path = request.app.state.settings.models_folder()
    found = folder.find(models, ollama.model_name(body.source) or "")
    if found is None:
        raise ApiError(404, f"model '{body.source}' not found in the models folder", param="source")
    try:
        await asyncio.to_thread(folder.copy, found, ollama.model_name(body.destination) or "")
    except ValueError as exc:
        raise ApiError(400, str(exc), param="destination") from None
    except FileExistsError as exc:
        raise ApiError(409, str(exc), param="destination") from None
    return Response(status_code=200)
