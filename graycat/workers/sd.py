"""`graycat worker sd`: a worker for image jobs on diffusers, one pool per checkpoint of the models folder."""

from __future__ import annotations

import asyncio
import signal

from graycat.config import Settings
from graycat.queue.connection import connect
from graycat.queue.consumer import Consumer
from graycat.queue.resp import PipelinedConnection
from graycat.workers.engines.diffusers import DiffusersEngine
from graycat.workers.worker import Worker


async def serve(settings: Settings) -> None:
    """Run one SD worker until SIGTERM / SIGINT, then finish the job it holds."""
    if settings.sd_models_dir is None:
        raise FileNotFoundError("no models folder: pass --models-dir DIR or set SD_MODELS_DIR")
    engine = DiffusersEngine(settings.sd_models_dir, device=settings.sd_device, dtype=settings.sd_dtype,
                             threads=settings.sd_threads, attention_slicing=settings.sd_attention_slicing,
                             vae_tiling=settings.sd_vae_tiling)
    await engine.start()
    url = settings.resolved_redis_url()
    redis, reader = connect(url), connect(url, blocking=True)
    events = PipelinedConnection(url)
    consumer = Consumer(redis, reader, events, Worker.new_id("sd"), [("sd", m) for m in engine.models()],
                        record_ttl=settings.record_ttl())
    worker = Worker(consumer, engine, visibility_timeout=settings.visibility_timeout,
                    max_deliveries=settings.max_deliveries, job_timeout=settings.job_timeout_for(engine.kind),
                    stop_timeout=settings.stop_timeout)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await engine.close()
        await redis.aclose()
        await reader.aclose()
        await events.close()
