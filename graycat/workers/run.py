"""Running a worker around a started engine: its Redis connections, signals, optional /metrics, clean exit."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Coroutine
from typing import Any

from graycat.config import Settings
from graycat.queue import scripts
from graycat.queue.connection import connect
from graycat.queue.consumer import Consumer
from graycat.queue.resp import PipelinedConnection
from graycat.workers.engines.base import Engine
from graycat.workers.metrics_server import serve_metrics
from graycat.workers.worker import Worker

log = logging.getLogger(__name__)


async def run_worker(
    settings: Settings, engine: Engine, kinds: list[str], load: Coroutine[Any, Any, Engine] | None = None
) -> None:
    """Serve `engine`'s models in the pools of `kinds` until SIGTERM / SIGINT, then finish the jobs held; the
    engine is closed on the way out. With `load`, `engine` is a `Loading` stand-in announced while `load` brings
    up the engine that replaces it."""
    url = settings.resolved_redis_url()
    worker_id = Worker.new_id(engine.kind)  # names its connections: CLIENT LIST tells whose they are
    redis, reader = connect(url, name=worker_id), connect(url, blocking=True, name=worker_id)
    events = PipelinedConnection(url, name=worker_id, preload=scripts.SOURCES)
    consumer = Consumer(
        redis,
        reader,
        events,
        worker_id,
        [(k, m) for m in engine.models() for k in kinds],
        record_ttl=settings.record_ttl(),
    )
    worker = Worker(
        consumer,
        engine,
        visibility_timeout=settings.visibility_timeout,
        max_deliveries=settings.max_deliveries,
        job_timeout=settings.job_timeout_for(engine.kind),
        stop_timeout=settings.stop_timeout,
        result_max_bytes=settings.result_max_bytes,
        default=settings.llm_default and "llm" in kinds,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    metrics = None
    if settings.worker_metrics_port:
        metrics = await serve_metrics(worker, "0.0.0.0", settings.worker_metrics_port, settings.metrics_token)
        log.info("worker metrics on port %d", settings.worker_metrics_port)
    try:
        await worker.run(load)
    finally:
        if metrics is not None:
            await metrics.cleanup()
        await worker.engine.close()
        await redis.aclose()
        await reader.aclose()
        await events.close()
        await consumer.close()
    if worker.loading:  # stopped while loading: the loading thread cannot be interrupted, nor need it end
        logging.shutdown()
        os._exit(0)
