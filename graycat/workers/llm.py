"""`graycat worker llm`: a worker for text jobs on llama.cpp (embedded, or an external server by URL)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from graycat.config import DEFAULT_MODEL_NAME, Settings
from graycat.store.download import download
from graycat.store.folder import described, human, on_disk, served_at_start
from graycat.store.refs import quant_of
from graycat.store.remote import Remote
from graycat.store.sources import locate
from graycat.workers.engines.base import Engine
from graycat.workers.engines.llama_http import LlamaHttpEngine
from graycat.workers.engines.llama_process import config
from graycat.workers.engines.llama_server import EmbeddedLlamaServer, default_model_path
from graycat.workers.engines.loading import Loading
from graycat.workers.engines.models import ModelRouter
from graycat.workers.engines.null import NullEngine
from graycat.workers.engines.pulled import PullingEngine
from graycat.workers.engines.supervisor import EngineProcess
from graycat.workers.run import run_worker

log = logging.getLogger(__name__)
PULL_LOG_S = 10.0


async def serve(settings: Settings, *, null_tokens: int | None = None, null_delay: float = 0.0) -> None:
    """Run one LLM worker until SIGTERM / SIGINT, then finish the jobs it holds. With `null_tokens`, the
    worker runs the null engine (for measuring the gateway) instead of llama.cpp. The embedded engine's
    models are announced as loading while they load; each embedded llama.cpp server runs in a supervised child
    process (restarted when it crashes)."""
    kinds = ["llm", "embed"] if settings.embeddings and null_tokens is None else ["llm"]
    engine: Engine
    if null_tokens is not None:
        engine = NullEngine(
            settings.model_name or "null", slots=settings.slots, tokens=null_tokens, token_delay=null_delay
        )
    elif settings.llama_url:
        engine = LlamaHttpEngine(
            settings.llama_url, settings.model_name, embeddings=settings.embeddings, prompt_cache=settings.prompt_cache
        )
    else:
        models = settings.models_folder()
        sources = _sources(settings, models)
        again = {n: p for n, p in served_at_start(models).items() if n not in sources}  # pulled before this start
        loading = Loading(
            "llm", {name: {"kind": "llm", **_facts(source)} for name, source in {**sources, **again}.items()}
        )
        processes: list[EngineProcess] = []
        try:
            await run_worker(settings, loading, kinds, _load(settings, sources, processes, loading))
        finally:
            for process in processes:
                await process.close()
        return
    await engine.start()
    await run_worker(settings, engine, kinds)


def _sources(settings: Settings, models: Path) -> dict[str, Path | Remote]:
    """Each model to serve, by name: a file, or a reference's file to pull first (the Hub asked now, so the name
    is known while it downloads)."""
    first = locate(settings.model, models) if settings.model else default_model_path()
    name = settings.model_name or (DEFAULT_MODEL_NAME if settings.model is None else _stem(first))
    sources = {name: first, **{n: locate(text, models) for n, text in settings.extra_models.items()}}
    for source in sources.values():
        if isinstance(source, Path) and not source.is_file():
            raise FileNotFoundError(f"model file not found: {source}")
    return sources


def _facts(source: Path | Remote) -> dict[str, Any]:
    """What is known of a model's file before it is loaded (or downloaded), as workers announce models."""
    if isinstance(source, Path):
        return described(on_disk(source))
    return {"size": source.size or 0, "digest": source.sha256 or "", "quantization": quant_of(source.file_name) or ""}


def _stem(source: Path | Remote) -> str:
    return Path(source.file_name).stem if isinstance(source, Remote) else source.stem


async def _load(
    settings: Settings, sources: dict[str, Path | Remote], processes: list[EngineProcess], loading: Loading
) -> Engine:
    """Pull the models not on disk yet (their progress shown by `loading`), start each embedded server's process
    (loading its model) and the engine that talks to them, and serve again those pulled into the models folder
    through the gateway before; the worker can then pull more models and serve them."""
    paths = {
        name: source if isinstance(source, Path) else await _pull(source, settings.models_folder(), name, loading)
        for name, source in sources.items()
    }

    async def start(model: str, path: Path) -> Engine:
        return await _start_server(settings, model, path, processes)

    engines = [await start(model, path) for model, path in paths.items()]
    engine = engines[0] if len(engines) == 1 else ModelRouter(engines)
    await engine.start()
    pulling = PullingEngine(engine, settings.models_folder(), start, {name: on_disk(p) for name, p in paths.items()})
    await pulling.restore()
    return pulling


async def _start_server(settings: Settings, model: str, path: Path, processes: list[EngineProcess]) -> Engine:
    """An embedded llama.cpp server of `model` in its own supervised process (added to `processes`, which the
    worker closes on its way out), and the engine that talks to it (not started)."""
    server = EmbeddedLlamaServer(
        path,
        alias=model,
        slots=settings.slots,
        ctx_per_slot=settings.ctx_per_slot,
        threads=settings.threads,
        gpu_layers=settings.gpu_layers,
        poll=settings.poll,
        nice=settings.nice,
        embeddings=settings.embeddings,
        slot_dir=settings.data_dir.resolve() / "slots" / model,
        chat_template=settings.chat_template_for(model),
        shared_cache=settings.prompt_cache == "shared",
    )
    process = EngineProcess(
        "graycat.workers.engines.llama_process",
        [config(server, settings.chat_template_for(model), (settings.log_level, settings.log_format))],
        f"llama.cpp {model}",
    )
    processes.append(process)
    return LlamaHttpEngine(
        await process.start(),
        model,
        embeddings=settings.embeddings,
        prompt_cache=settings.prompt_cache,
        template_override=server.chat_template if server.template_is_name else None,
        process=process,
    )


async def _pull(remote: Remote, models: Path, name: str, loading: Loading) -> Path:
    """Download `remote` (in a thread), its progress in the heartbeat and, every few seconds, in the log."""
    logged = 0.0

    def report(done: int, total: int | None) -> None:
        nonlocal logged
        loading.pulls[name] = {"completed": done, "total": total}
        if time.monotonic() - logged >= PULL_LOG_S or done == total:
            logged = time.monotonic()
            log.info("pulling %s: %s of %s", name, human(done), human(total) if total else "?")

    log.info("pulling %s from %s", name, remote.ref)
    path = await asyncio.to_thread(download, remote, models, progress=report)
    loading.pulls.pop(name, None)
    return path
