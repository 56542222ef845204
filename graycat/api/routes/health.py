"""`/health`: public liveness and readiness (Redis reachable, workers alive): status `ok` once a worker is
ready, `loading` while every live worker still loads its engine, `no_workers`; the models served (those still
loading, with the progress of those still downloading, and the image checkpoints, listed apart); `/`: what this
server is, or the web console for a browser."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Header, Request
from redis.exceptions import RedisError
from starlette.responses import Response

from graycat import __version__
from graycat.api.routes import json_response
from graycat.api.routes.console import page_response
from graycat.queue.client import Served

router = APIRouter(tags=["health"])


@router.get(
    "/",
    summary="What this server is, and where its docs are (no token needed); the web console for "
    "a request whose Accept prefers text/html (a browser)",
)
async def root(accept: str = Header(""), if_none_match: str | None = Header(None)) -> Response:
    if prefers_html(accept):
        return page_response(if_none_match)
    return json_response(
        {
            "name": "Graycat AI Server",
            "version": __version__,
            "docs": "/docs",
            "console": "/console",
            "openapi": "/openapi.json",
            "health": "/health",
            "models": "/v1/models",
        },
        headers={"Vary": "Accept"},
    )


def prefers_html(accept: str) -> bool:
    """Whether an Accept header ranks text/html above JSON (browsers do; `*/*` or none, as API clients send,
    does not)."""
    ranks: dict[str, float] = {}
    for part in accept.lower().split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranks[media] = max(ranks.get(media, 0.0), quality)
    json_rank = ranks.get("application/json", ranks.get("application/*", ranks.get("*/*", 0.0)))
    return ranks.get("text/html", 0.0) > json_rank


@router.get("/health", summary="Gateway health (no token needed)")
@router.post("/health", include_in_schema=False)
async def health(request: Request) -> Response:
    queue = request.app.state.queue
    instance = request.app.state.settings.instance_id
    mine = {"instance": instance} if instance else {}  # set by `graycat up`, which looks for its own api
    try:
        async with asyncio.timeout(2.0):
            workers = await queue.live_workers()
    except (RedisError, OSError, TimeoutError) as exc:
        return json_response(
            {
                "status": "error",
                "redis": False,
                "workers": 0,
                "reason": f"Redis unreachable: {exc or 'timeout'}",
                **mine,
            },
            503,
        )
    served = Served.of(workers)
    status = "ok" if any(not w.get("loading") for w in workers) else "loading" if workers else "no_workers"
    pulling = {
        model: progress for w in workers for model, progress in ((w.get("engine") or {}).get("pulling") or {}).items()
    }
    return json_response(
        {
            "status": status,
            "redis": True,
            "workers": len(workers),
            "models": served.models(),
            "loading": sorted(served.loading),
            **({"pulling": pulling} if pulling else {}),
            "images": served.models("sd"),
            **mine,
        }
    )
