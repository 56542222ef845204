"""`/health`: public liveness and readiness (Redis reachable, workers alive)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from redis.exceptions import RedisError
from starlette.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/health", summary="Gateway health (no token needed)")
@router.post("/health", include_in_schema=False)
async def health(request: Request) -> JSONResponse:
    queue = request.app.state.queue
    try:
        async with asyncio.timeout(2.0):
            workers = await queue.live_workers()
    except (RedisError, OSError, TimeoutError) as exc:
        return JSONResponse({"status": "error", "redis": False, "workers": 0,
                             "reason": f"Redis unreachable: {exc or 'timeout'}"}, 503)
    models = sorted({m for w in workers for m in w.get("models", [])})
    return JSONResponse({"status": "ok" if workers else "no_workers", "redis": True,
                         "workers": len(workers), "models": models})
