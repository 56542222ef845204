"""`graycat worker llm`: a worker for text jobs on llama.cpp (embedded, or an external server by URL)."""

from __future__ import annotations

from graycat.config import Settings
from graycat.workers.engines.base import Engine
from graycat.workers.engines.llama import EmbeddedLlamaServer, default_model_path
from graycat.workers.engines.llama_http import LlamaHttpEngine
from graycat.workers.engines.llama_process import config
from graycat.workers.engines.loading import Loading
from graycat.workers.engines.models import ModelRouter
from graycat.workers.engines.null import NullEngine
from graycat.workers.engines.supervisor import EngineProcess
from graycat.workers.run import run_worker


async def serve(settings: Settings, *, null_tokens: int | None = None, null_delay: float = 0.0) -> None:
    """Run one LLM worker until SIGTERM / SIGINT, then finish the jobs it holds. With `null_tokens`, the
    worker runs the null engine (for measuring the gateway) instead of llama.cpp. The embedded engine's
    models are announced as loading while they load; each embedded llama.cpp server runs in a supervised child
    process (restarted when it crashes)."""
    kinds = ["llm", "embed"] if settings.embeddings and null_tokens is None else ["llm"]
    engine: Engine
    if null_tokens is not None:
        engine = NullEngine(settings.model_name or "null", slots=settings.slots, tokens=null_tokens,
                            token_delay=null_delay)
    elif settings.llama_url:
        engine = LlamaHttpEngine(settings.llama_url, settings.model_name, embeddings=settings.embeddings,
                                 prompt_cache=settings.prompt_cache)
    else:
        path = settings.model or default_model_path()
        servers = [EmbeddedLlamaServer(model_path, alias=model, slots=settings.slots,
                                       ctx_per_slot=settings.ctx_per_slot, threads=settings.threads,
                                       gpu_layers=settings.gpu_layers, poll=settings.poll, nice=settings.nice,
                                       embeddings=settings.embeddings,
                                       slot_dir=settings.data_dir.resolve() / "slots" / model,
                                       chat_template=settings.chat_template_for(model),
                                       shared_cache=settings.prompt_cache == "shared")
                   for model, model_path in {settings.served_model_name(): path, **settings.extra_models}.items()]
        processes = [EngineProcess("graycat.workers.engines.llama_process",
                                   [config(s, settings.chat_template_for(s.alias),
                                           (settings.log_level, settings.log_format))], f"llama.cpp {s.alias}")
                     for s in servers]
        try:
            await run_worker(settings, Loading("llm", {s.alias: {"kind": "llm"} for s in servers}), kinds,
                             _load(settings, servers, processes))
        finally:
            for process in processes:
                await process.close()
        return
    await engine.start()
    await run_worker(settings, engine, kinds)


async def _load(settings: Settings, servers: list[EmbeddedLlamaServer], processes: list[EngineProcess]) -> Engine:
    """Start each embedded server's process (loading its model) and the engine that talks to them."""
    engines: list[Engine] = []
    for server, process in zip(servers, processes, strict=True):
        engines.append(LlamaHttpEngine(await process.start(), server.alias,
                                       embeddings=settings.embeddings, prompt_cache=settings.prompt_cache,
                                       template_override=server.chat_template if server.template_is_name else None,
                                       process=process))
    engine = engines[0] if len(engines) == 1 else ModelRouter(engines)
    await engine.start()
    return engine
