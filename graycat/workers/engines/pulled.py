"""An LLM worker's engine that can take more models while it runs: it pulls a reference into the worker's models
folder (POST /api/pull, through graycat/queue/pulls.py) and starts an embedded server for it beside the models it
already serves. Each model it serves is announced with its file's facts (size, SHA-256, quantisation, family), so
the gateway can list models whose files are on no disk of its own."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from graycat.jobs import Job
from graycat.store.download import INTERRUPTED, download
from graycat.store.folder import OnDisk, described, on_disk
from graycat.store.remote import PullError
from graycat.store.sources import locate
from graycat.workers.engines.base import Emit, Engine

PROGRESS_EVERY_S = 0.25
StartModel = Callable[[str, Path], Awaitable[Engine]]  # (name, GGUF file) -> an engine serving it, not started


class PullingEngine:
    """`base` (the models the worker started with) plus the models pulled since, each on an engine of its own."""

    def __init__(self, base: Engine, models_dir: Path, start: StartModel, files: dict[str, OnDisk]) -> None:
        self.kind = base.kind
        self._base = base
        self._models_dir = models_dir
        self._start = start
        self._files = {name: described(model) for name, model in files.items()}
        self._added: dict[str, Engine] = {}
        self.pulls: dict[str, dict[str, int | None]] = {}  # name -> completed and total bytes, while downloading

    @property
    def slots(self) -> int:
        return self._base.slots + sum(e.slots for e in self._added.values())

    def models(self) -> dict[str, dict[str, Any]]:
        served = {**self._base.models(), **{n: i for e in self._added.values() for n, i in e.models().items()}}
        return {name: {**self._files.get(name, {}), **info} for name, info in served.items()}

    def stats(self) -> dict[str, Any]:
        stats = self._base.stats()
        if self._added:
            stats = {**stats, "pulled": {name: e.stats() for name, e in self._added.items()}}
        return {**stats, "pulling": dict(self.pulls)} if self.pulls else stats

    async def start(self) -> None:
        return None  # `base` is started already

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        added = self._added.get(job.model)
        return await (added or self._base).run(job, emit)

    async def close(self) -> None:
        for engine in [*self._added.values(), self._base]:
            await engine.close()

    async def pull(self, ref: str) -> AsyncIterator[dict[str, Any]]:
        """Download `ref` (unless it is here already), then serve it: Ollama's progress events."""
        located = await asyncio.to_thread(locate, ref, self._models_dir)
        yield {"status": "pulling manifest"}
        if isinstance(located, Path):  # pulled before, and its source is out of reach now
            path = located
        else:
            name = Path(located.file_name).stem
            status = f"pulling {located.sha256[:12]}" if located.sha256 else f"pulling {located.file_name}"
            digest = {"digest": f"sha256:{located.sha256}"} if located.sha256 else {}
            loop = asyncio.get_running_loop()
            progress: asyncio.Queue[tuple[int, int | None]] = asyncio.Queue()
            shown = 0.0

            stopped = threading.Event()  # set when the pull is abandoned: the download thread ends at its next write

            def report(done: int, total: int | None) -> None:
                nonlocal shown
                if stopped.is_set():
                    raise PullError(f"the pull of {name} stopped", INTERRUPTED)
                self.pulls[name] = {"completed": done, "total": total}
                if time.monotonic() - shown >= PROGRESS_EVERY_S or done == total:
                    shown = time.monotonic()
                    loop.call_soon_threadsafe(progress.put_nowait, (done, total))

            task = asyncio.ensure_future(asyncio.to_thread(download, located, self._models_dir, progress=report))
            try:
                while not task.done() or not progress.empty():
                    with contextlib.suppress(TimeoutError):
                        done, total = await asyncio.wait_for(progress.get(), 0.5)
                        yield {"status": status, **digest, "total": total or located.size or 0, "completed": done}
                path = task.result()
            finally:
                self.pulls.pop(name, None)
                if not task.done():  # the worker stops: let its thread end rather than finish the download
                    stopped.set()
                    task.add_done_callback(lambda t: t.cancelled() or t.exception())
            yield {"status": "verifying sha256 digest"}
            yield {"status": "writing manifest"}
        name = path.stem
        if name not in self.models():
            yield {"status": f"loading {name}"}
            try:
                engine = await self._start(name, path)
                await engine.start()
            except Exception as exc:
                raise PullError(f"{path.name} was pulled, but llama.cpp cannot serve it: {exc}", 422) from None
            self._added[name] = engine
            self._files[name] = described(on_disk(path))
        yield {"status": "success", "model": name}
