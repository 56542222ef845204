"""Queue and model status: what waits, what runs, which workers serve which models."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.access.auth import TokenFirstRoute, require_token
from graycat.api.access.limits import Caller
from graycat.api.dialects.openai import model_list
from graycat.api.routes import json_response

router = APIRouter(tags=["queue"], dependencies=[Depends(require_token)], route_class=TokenFirstRoute)

_KINDS = {"llm": "text", "sd": "image"}
_SUMMARY = ("id", "kind", "models", "slots", "busy", "heartbeat", "stopping", "loading")
_DETAILS = (*_SUMMARY, "jobs", "version", "host", "engine")  # where workers run and what: admins only


@router.get(
    "/queue/status",
    summary="Per pool: waiting, active, completed, failed, redelivered; live workers "
    "(their hosts, jobs and engines for admin tokens)",
)
async def queue_status(request: Request, caller: Caller = Depends(require_token)) -> Response:
    queue = request.app.state.queue
    workers = await queue.live_workers()
    pools = await queue.pool_status()
    for pool in pools:
        pool["workers"] = [
            w["id"] for w in workers if w.get("kind") == pool["kind"] and pool["model"] in w.get("models", [])
        ]
    fields = _DETAILS if caller.admin else _SUMMARY
    return json_response(
        {"pools": pools, "workers": [{**{k: w.get(k) for k in fields}, "pulling": _pulling(w)} for w in workers]}
    )


def _pulling(worker: dict[str, Any]) -> dict[str, Any]:
    """The models a worker downloads now: name -> completed and total bytes."""
    return dict((worker.get("engine") or {}).get("pulling") or {})


@router.get(
    "/models",
    summary="Text and image models served by live workers, with their worker counts; also "
    "the OpenAI list of /v1/models (`object`, `data`), as llama-server answers /models",
)
async def models(request: Request) -> Response:
    queue = request.app.state.queue
    known = await queue.models(fresh=True)
    served: dict[str, dict[str, Any]] = defaultdict(lambda: {"workers": 0, "slots": 0, "ready": 0, "pulling": None})
    for worker in await queue.live_workers():
        for name in worker.get("models", []):
            entry = served[name]
            entry["workers"] += 1
            entry["slots"] += int(worker.get("slots") or 0)
            entry["ready"] += 0 if worker.get("loading") else 1
            entry["kind"] = worker.get("kind")
            entry["pulling"] = _pulling(worker).get(name) or entry["pulling"]
    listing: dict[str, list[dict[str, Any]]] = {"text": [], "image": []}
    for name, entry in sorted(served.items()):
        info = known.get(name, {})
        listing[_KINDS.get(str(entry["kind"]), "text")].append(
            {
                "name": name,
                "workers": entry["workers"],
                "slots": entry["slots"],
                "n_ctx": info.get("n_ctx"),
                "loading": entry["ready"] == 0,  # no worker serving it is ready yet: its requests wait
                **({"pulling": entry["pulling"]} if entry["pulling"] else {}),  # downloaded at a worker's start
            }
        )
    return json_response({**model_list({name: known.get(name, {}) for name in served}), **listing})
