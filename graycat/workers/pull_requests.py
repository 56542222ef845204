"""A worker taking model pulls from the queue (graycat/queue/pulls.py), one at a time: it pulls on its engine,
reports each progress event to the pull's stream, and claims from the new model's pools once it serves it."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

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
    log.info("pull %s of %s: started", request.id, request.ref)
    before = set(worker.engine.models())
    try:
        async for event in engine.pull(request.ref):
            if event.get("status") == "success":
                await worker.models_changed(before)
            await pulls.report(redis, request.id, {**event, "worker": worker.id})
    except asyncio.CancelledError:
        log.warning("pull %s of %s: stopped with the worker", request.id, request.ref)
        raise
    except PullError as exc:
        log.warning("pull %s of %s failed: %s", request.id, request.ref, exc)
        await pulls.report(redis, request.id, {"error": str(exc), "code": exc.status, "worker": worker.id})
        return
    except RedisError:
        raise
    except Exception as exc:
        log.exception("pull %s of %s failed", request.id, request.ref)
        await pulls.report(
            redis, request.id, {"error": f"the pull failed on {worker.id}: {exc}", "code": 500, "worker": worker.id}
        )
        return
    log.info("pull %s of %s: done", request.id, request.ref)
