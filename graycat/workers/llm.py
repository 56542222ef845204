"""`graycat worker llm`: a worker for text jobs on llama.cpp (embedded, or an external server by URL)."""

from __future__ import annotations

import asyncio
import logging
import signal

from graycat.config import DEFAULT_MODEL_NAME, Settings
from graycat.queue.connection import connect
from graycat.queue.consumer import Consumer
from graycat.queue.resp import PipelinedConnection
from graycat.workers.engines.base import Engine
from graycat.workers.engines.llama import EmbeddedLlamaServer, default_model_path
from graycat.workers.engines.llama_http import LlamaHttpEngine
from graycat.workers.engines.models import ModelRouter
from graycat.workers.engines.null import NullEngine
from graycat.workers.metrics_server import serve_metrics
from graycat.workers.worker import Worker

log = logging.getLogger(__name__)


async def serve(settings: Settings, *, null_tokens: int | None = None, null_delay: float = 0.0) -> None:
    """Run one LLM worker until SIGTERM / SIGINT, then finish the jobs it holds. With `null_tokens`, the
    worker runs the null engine (for measuring the gateway) instead of llama.cpp."""
    embedded: list[EmbeddedLlamaServer] = []
    engines: list[Engine] = []
    engine: Engine
    if null_tokens is not None:
        engine = NullEngine(settings.model_name or "null", slots=settings.slots, tokens=null_tokens,
                            token_delay=null_delay)
    elif settings.llama_url:
        engine = LlamaHttpEngine(settings.llama_url, settings.model_name, embeddings=settings.embeddings)
    else:
        path = settings.model or default_model_path()
        name = settings.model_name or (DEFAULT_MODEL_NAME if settings.model is None else path.stem)
        for model, model_path in {name: path, **settings.extra_models}.items():
            server = EmbeddedLlamaServer(model_path, alias=model, slots=settings.slots,
                                         ctx_per_slot=settings.ctx_per_slot, threads=settings.threads,
                                         gpu_layers=settings.gpu_layers, poll=settings.poll, nice=settings.nice,
                                         embeddings=settings.embeddings,
                                         slot_dir=settings.data_dir.resolve() / "slots" / model,
                                         chat_template=settings.chat_template_for(model))
            embedded.append(server)
            engines.append(LlamaHttpEngine(await asyncio.to_thread(server.start), model,
                                           embeddings=settings.embeddings,
                                           template_override=server.chat_template if server.template_is_name else None))
        engine = engines[0] if len(engines) == 1 else ModelRouter(engines)
    await engine.start()
    url = settings.resolved_redis_url()
    redis, reader = connect(url), connect(url, blocking=True)
    worker_id = Worker.new_id("llm")
    events = PipelinedConnection(url)
    kinds = ["llm", "embed"] if settings.embeddings and null_tokens is None else ["llm"]
    consumer = Consumer(redis, reader, events, worker_id, [(k, m) for m in engine.models() for k in kinds],
                        record_ttl=settings.record_ttl())
    worker = Worker(consumer, engine, visibility_timeout=settings.visibility_timeout,
                    max_deliveries=settings.max_deliveries, job_timeout=settings.job_timeout_for(engine.kind),
                    stop_timeout=settings.stop_timeout)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    metrics = None
    if settings.worker_metrics_port:
        metrics = await serve_metrics(worker, "0.0.0.0", settings.worker_metrics_port, settings.metrics_token)
        log.info("worker metrics on port %d", settings.worker_metrics_port)
    try:
        await worker.run()
    finally:
        if metrics is not None:
            await metrics.cleanup()
        await engine.close()
        await redis.aclose()
        await reader.aclose()
        await events.close()
        for server in embedded:
            server.stop()
