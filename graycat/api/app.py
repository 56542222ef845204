"""The FastAPI application: wiring of middleware, error handlers, routes and the queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse
from redis.exceptions import RedisError

from graycat import __version__
from graycat.api import errors
from graycat.api.access.cors import CorsMiddleware
from graycat.api.access.hardening import HardeningMiddleware
from graycat.api.access.limits import LimitsMiddleware
from graycat.api.access.tenant_gates import TenantGate
from graycat.api.console_feed import ConsoleFeed
from graycat.api.middleware import CollapseSlashesMiddleware, RequestMiddleware
from graycat.api.routes import (
    a1111,
    admin,
    anthropic,
    console,
    dead_letters,
    health,
    images,
    jobs,
    llamacpp,
    metrics,
    ollama,
    ollama_models,
    openai,
    queue,
    responses,
    sessions,
)
from graycat.config import Settings
from graycat.metrics import ApiMetrics
from graycat.queue import scripts
from graycat.queue.client import JobQueue
from graycat.queue.connection import connect
from graycat.queue.hub import EventHub
from graycat.queue.presence import WATCH_INTERVAL_S, WorkerWatch
from graycat.queue.resp import PipelinedConnection

log = logging.getLogger(__name__)


QUEUE_GRACE_S = 1.0  # a waiting request's own timer fires first and answers 503 no_worker
JANITOR_INTERVAL_S = 1.0
REQUEST_COUNTS_INTERVAL_S = 1.0


async def _expire_waiting(queue: JobQueue, settings: Settings) -> None:
    """Expire jobs that waited past their kind's queue deadline, whether or not a client waits for them, and
    move the jobs of gone workers' direct lanes to their pools (any replica may do it: the scripts are
    idempotent)."""
    scanned = False
    while True:
        await asyncio.sleep(JANITOR_INTERVAL_S)
        try:
            await queue.register_pools(scan=not scanned)
            scanned = True
            if expired := await queue.expire_waiting(lambda kind: settings.queue_timeout_for(kind) + QUEUE_GRACE_S):
                log.warning("%d job(s) expired in the queue: no worker took them in time", expired)
            if moved := await queue.rescue_lanes():
                log.warning("%d job(s) meant for workers that are gone moved to their pools", moved)
        except (RedisError, OSError) as exc:
            log.debug("queue janitor: %s", exc)
        except Exception:  # the loop must outlive any one bad record
            log.exception("queue janitor failed; trying again")


async def _watch_workers(watch: WorkerWatch, queue: JobQueue) -> None:
    """Hand the jobs of workers whose process died to live workers within about a second (presence.py)."""
    while True:
        await asyncio.sleep(WATCH_INTERVAL_S)
        try:
            handed = await watch.check()
            for worker_id, jobs in handed.items():
                log.warning(
                    "worker %s is gone (its Redis connections closed): %d job(s) handed to other workers",
                    worker_id,
                    jobs,
                )
            if handed:
                await queue.rescue_lanes()
        except (RedisError, OSError) as exc:
            log.debug("worker watch: %s", exc)
        except Exception:  # without this loop dead workers wait for VISIBILITY_TIMEOUT: it must go on
            log.exception("worker watch failed; trying again")


async def _write_request_counts(queue: JobQueue) -> None:
    """Write the requests this process counted into the tokens' daily usage once a second (RequestCounts)."""
    while True:
        await asyncio.sleep(REQUEST_COUNTS_INTERVAL_S)
        try:
            queue.write_request_counts()
        except (RedisError, OSError) as exc:  # they wait for the next second
            log.debug("request counts: %s", exc)


def create_app(settings: Settings) -> FastAPI:
    """An app bound to `settings`; Redis is connected at startup and may come and go afterwards."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_redis_url()
        redis = connect(url, max_connections=settings.redis_max_connections, pool_timeout=settings.redis_pool_timeout)
        hub = EventHub(url, uuid.uuid4().hex)
        await hub.start()
        writer = PipelinedConnection(url, preload=scripts.SOURCES)  # loads them into Redis: EVALSHA finds them
        app.state.events_reader = connect(
            url, blocking=True, max_connections=settings.redis_max_connections, pool_timeout=settings.redis_pool_timeout
        )  # GET /jobs/{id}/events
        app.state.queue = JobQueue(
            redis,
            writer,
            hub,
            record_ttl=settings.record_ttl(),
            max_waiting=settings.max_waiting,
            max_waiting_per_token=settings.max_waiting_per_token,
            queue_timeout=max([settings.queue_timeout, *settings.queue_timeouts.values()]),
        )
        janitor = asyncio.create_task(_expire_waiting(app.state.queue, settings))
        watcher = asyncio.create_task(_watch_workers(WorkerWatch(redis, writer), app.state.queue))
        counts = asyncio.create_task(_write_request_counts(app.state.queue))
        try:
            yield
        finally:
            janitor.cancel()
            watcher.cancel()
            counts.cancel()
            with contextlib.suppress(RedisError, OSError):
                app.state.queue.write_request_counts()  # the last second's, before the connection closes
            await hub.stop()
            await writer.close()
            await app.state.events_reader.aclose()
            await redis.aclose()

    app = FastAPI(
        title="Graycat AI Server",
        version=__version__,
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        description="One authenticated gateway for self-hosted text and image generation.",
    )
    app.state.settings = settings
    app.state.tokens = [t.encode() for t in settings.api_tokens]
    app.state.admin_tokens = [t.encode() for t in settings.admin_tokens]
    app.state.metrics = ApiMetrics()
    app.state.job_polls = TenantGate("job polls", "JOB_POLLS_PER_TOKEN", settings.job_polls_per_token)
    app.state.job_streams = TenantGate("event streams", "JOB_STREAMS_PER_TOKEN", settings.job_streams_per_token)
    app.state.console_feed = ConsoleFeed()
    errors.install(app)
    app.add_middleware(LimitsMiddleware)
    app.add_middleware(HardeningMiddleware, max_body_mb=settings.max_body_mb)
    app.add_middleware(CorsMiddleware, origins=settings.cors_origins)  # a browser can read even a 413
    app.add_middleware(RequestMiddleware, metrics=app.state.metrics)  # request id, metrics, access log
    app.add_middleware(CollapseSlashesMiddleware)  # outermost: routing sees `//` as `/`
    for router in (
        health.router,
        metrics.router,
        llamacpp.router,
        openai.router,
        responses.router,
        anthropic.router,
        ollama_models.router,
        ollama.router,
        queue.router,
        jobs.router,
        sessions.router,
        admin.router,
        a1111.router,
        images.router,
        images.files,
        dead_letters.router,
        console.pages,
        console.router,
    ):
        app.include_router(router)
    return app
