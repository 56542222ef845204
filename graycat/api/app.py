"""The FastAPI application: wiring of middleware, error handlers, routes and the queue."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse
from redis.exceptions import RedisError

from graycat import __version__
from graycat.api import errors
from graycat.api.middleware import RequestMiddleware
from graycat.api.routes import health, jobs, llamacpp, metrics, openai, queue
from graycat.config import Settings
from graycat.metrics import ApiMetrics
from graycat.queue.client import JobQueue
from graycat.queue.connection import connect
from graycat.queue.hub import EventHub
from graycat.queue.resp import PipelinedConnection

log = logging.getLogger(__name__)


QUEUE_GRACE_S = 1.0  # a waiting request's own timer fires first and answers 503 no_worker
JANITOR_INTERVAL_S = 1.0


async def _expire_waiting(queue: JobQueue, settings: Settings) -> None:
    """Expire jobs that waited past their kind's queue deadline, whether or not a client waits for them (any
    replica may do it: the script is idempotent)."""
    while True:
        await asyncio.sleep(JANITOR_INTERVAL_S)
        try:
            if expired := await queue.expire_waiting(lambda kind: settings.queue_timeout_for(kind) + QUEUE_GRACE_S):
                log.warning("%d job(s) expired in the queue: no worker took them in time", expired)
        except (RedisError, OSError) as exc:
            log.debug("queue janitor: %s", exc)


def create_app(settings: Settings) -> FastAPI:
    """An app bound to `settings`; Redis is connected at startup and may come and go afterwards."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_redis_url()
        redis = connect(url)
        hub = EventHub(url, uuid.uuid4().hex)
        await hub.start()
        writer = PipelinedConnection(url)
        app.state.events_reader = connect(url, blocking=True)  # GET /jobs/{id}/events: blocking reads
        app.state.queue = JobQueue(redis, writer, hub, record_ttl=settings.record_ttl(),
                                   max_waiting=settings.max_waiting,
                                   max_waiting_per_token=settings.max_waiting_per_token,
                                   queue_timeout=max([settings.queue_timeout, *settings.queue_timeouts.values()]))
        janitor = asyncio.create_task(_expire_waiting(app.state.queue, settings))
        try:
            yield
        finally:
            janitor.cancel()
            await hub.stop()
            await writer.close()
            await app.state.events_reader.aclose()
            await redis.aclose()

    app = FastAPI(title="Graycat AI Server", version=__version__, lifespan=lifespan,
                  default_response_class=ORJSONResponse,
                  description="One authenticated gateway for self-hosted text and image generation.")
    app.state.settings = settings
    app.state.tokens = [t.encode() for t in settings.api_tokens]
    app.state.metrics = ApiMetrics()
    errors.install(app)
    app.add_middleware(RequestMiddleware, metrics=app.state.metrics)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(llamacpp.router)
    app.include_router(openai.router)
    app.include_router(queue.router)
    app.include_router(jobs.router)
    return app
