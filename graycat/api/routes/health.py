"""`/health`: public liveness and readiness (Redis reachable, workers alive)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from redis.exceptions import RedisError
from starlette.responses import Response

from graycat.api.routes import json_response
from graycat.queue.client import served_models

router = APIRouter(tags=["health"])


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
        return json_response({"status": "error", "redis": False, "workers": 0,
                             "reason": f"Redis unreachable: {exc or 'timeout'}", **mine}, 503)
    models = sorted(served_models(workers))
    return json_response({"status": "ok" if workers else "no_workers", "redis": True,
                         "workers": len(workers), "models": models, **mine})
