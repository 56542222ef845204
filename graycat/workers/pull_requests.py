"""A worker taking model pulls from the queue (graycat/queue/pulls.py), one at a time: it pulls on its engine,
reports each progress event to the pull's stream, and claims from the new model's pools once it serves it. A
delete or a copy comes the same way, and its outcome is its one event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from graycat.queue import pulls
from graycat.store.remote import PullError
from graycat.workers.engines.base import Pulls

if TYPE_CHECKING:
    from graycat.workers.worker import Worker

log = logging.getLogger(__name__)
TAKE_BLOCK_MS = 1000


async def serve_pulls(worker: Worker, engine: Pulls) -> None:
    """Take and run pull requests until the worker stops; Redis errors propagate to the caller, which backs
    off and calls again."""
    consumer = worker.consumer
    while not worker.stopping:
        for request in await pulls.take(consumer.redis, consumer.reader, worker.id, TAKE_BLOCK_MS):
            await _run(worker, engine, request)


async def _run(worker: Worker, engine: Pulls, request: pulls.PullRequest) -> None:
    redis = worker.consumer.redis
    log.info("%s %s of %s: started", request.action, request.id, request.ref)
    before = set(worker.engine.models())
    try:
        async for event in _events(engine, request):
            if event.get("status") == "success":
                await worker.models_changed(before)
            await pulls.report(redis, request.id, {**event, "worker": worker.id})
    except asyncio.CancelledError:
        log.warning("%s %s of %s: stopped with the worker", request.action, request.id, request.ref)
        raise
    except PullError as exc:
        log.warning("%s %s of %s failed: %s", request.action, request.id, request.ref, exc)
        await pulls.report(redis, request.id, {"error": str(exc), "code": exc.status, "worker": worker.id})
        return
    except RedisError:
        raise
    except Exception as exc:
        log.exception("%s %s of %s failed", request.action, request.id, request.ref)
        failed = f"the {request.action} failed on {worker.id}: {exc}"
        await pulls.report(redis, request.id, {"error": failed, "code": 500, "worker": worker.id})
        return
    log.info("%s %s of %s: done", request.action, request.id, request.ref)


async def _events(engine: Pulls, request: pulls.PullRequest) -> AsyncIterator[dict[str, Any]]:
    if request.action == "pull":
        async for event in engine.pull(request.ref):
            yield event
    elif request.action == "delete":
        yield {"status": "success", "model": request.ref, "detail": await engine.remove(request.ref)}
    elif request.action == "copy":
        detail = await engine.copy(request.ref, request.destination)
        yield {"status": "success", "model": request.destination, "detail": detail}
    else:
        raise PullError(f"unknown model operation {request.action!r} (this worker knows {pulls.ACTIONS})", 400)
