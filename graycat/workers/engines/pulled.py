"""An LLM worker's engine that can take more models while it runs: it pulls a reference into the worker's models
folder (POST /api/pull, through graycat/queue/pulls.py) and starts an embedded server for it beside the models it
already serves, remembering it in the folder (`.served.json`) to serve it again at its next start. It also deletes
such a model (DELETE /api/delete: no more jobs taken for it, the file removed at once, its llama.cpp server
stopped once its running jobs end) and copies one under a new name, served as well by a server of its own (POST
/api/copy). Each model it serves is announced with its file's facts (size, SHA-256, quantisation, family), so the
gateway can list models whose files are on no disk of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from graycat.jobs import Job, error_body
from graycat.store import folder
from graycat.store.download import INTERRUPTED, download
from graycat.store.folder import OnDisk, described, on_disk
from graycat.store.remote import PullError
from graycat.store.sources import locate
from graycat.workers.engines.base import Emit, Engine

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.25
StartModel = Callable[[str, Path], Awaitable[Engine]]  # (name, GGUF file) -> an engine serving it, not started


class PullingEngine:
    """`base` (the models the worker was started with) plus the models pulled or copied since (and those served
    again from the folder's `.served.json`), each on an engine of its own."""

    def __init__(self, base: Engine, models_dir: Path, start: StartModel, files: dict[str, OnDisk]) -> None:
        self.kind = base.kind
        self._base = base
        self._models_dir = models_dir
        self._start = start
        self._files = {name: described(model) for name, model in files.items()}
        self._paths = {name: model.path for name, model in files.items()}
        self._added: dict[str, Engine] = {}
        self._running: dict[int, int] = {}  # id of an added model's engine -> its jobs running now
        self._retiring: dict[asyncio.Task[None], Engine] = {}  # deleted models' engines, closed once their jobs end
        self._drained: dict[int, asyncio.Event] = {}  # id of a deleted model's engine -> set when its last job ends
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

    async def restore(self) -> None:
        """Serve again the models pulled or copied into the folder through the gateway before this start (those
        not served as the worker's own already); one that cannot be served is logged and skipped."""
        served = self.models()
        for name, path in (await asyncio.to_thread(folder.served_at_start, self._models_dir)).items():
            if name in served:
                continue
            try:
                await self._add(name, path)
            except Exception:
                log.exception("cannot serve %s again (pulled into %s before)", name, self._models_dir)

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        added = self._added.get(job.model)
        if added is None and job.model not in self._base.models():
            return 404, error_body(404, f"model '{job.model}' was deleted from this worker", "not_found_error")
        if added is None:
            return await self._base.run(job, emit)
        self._running[id(added)] = self._running.get(id(added), 0) + 1
        try:
            return await added.run(job, emit)
        finally:
            self._running[id(added)] -= 1
            if self._running[id(added)] == 0 and id(added) in self._drained:
                self._drained[id(added)].set()

    async def close(self) -> None:
        retiring = dict(self._retiring)  # (each leaves the dict as it ends)
        for task in retiring:
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        for engine in [*retiring.values(), *self._added.values(), self._base]:
            await engine.close()

    async def remove(self, name: str) -> str:
        """Take no more jobs for `name`, delete its file at once (its server has it open), and stop its server
        once the jobs it runs end. A model the worker was started with stays: it would need it at its next
        start."""
        if name in self._base.models():
            raise PullError(
                f"the worker was started with {name} (--model / --also-model / GRAYCAT_MODEL): it serves it until it "
                "is restarted without it",
                409,
            )
        engine = self._added.pop(name, None)
        if engine is None:
            raise PullError(f"model '{name}' is not served here", 404)
        self._files.pop(name, None)
        path = self._paths.pop(name)
        running = self._running.get(id(engine), 0)
        with contextlib.suppress(FileNotFoundError):  # a folder shared with another worker that deleted it first
            await asyncio.to_thread(folder.remove, on_disk(path))
        folder.forget(self._models_dir, name)
        task = asyncio.ensure_future(self._retire(engine))
        self._retiring[task] = engine
        task.add_done_callback(lambda done: self._retiring.pop(done, None))
        log.info("deleted %s (%s); %d running job(s) of it finish first", name, path, running)
        return f"deleted {path.name}" + (f"; its server stops after its {running} running job(s)" if running else "")

    async def _retire(self, engine: Engine) -> None:
        """Close a deleted model's engine once no job runs on it."""
        if self._running.get(id(engine), 0) > 0:
            drained = self._drained[id(engine)] = asyncio.Event()
            await drained.wait()
            del self._drained[id(engine)]
        self._running.pop(id(engine), None)
        await engine.close()

    async def copy(self, name: str, destination: str) -> str:
        """`name`'s file again as `destination` in the models folder (a hard link where it can be), served by a
        server of its own and remembered to be served at the next start. In a folder shared with another worker
        that made the same copy first, its link is served."""
        path = self._paths.get(name)
        if path is None:
            raise PullError(f"model '{name}' is not served here", 404)
        try:
            stem = folder.check_name(destination)
            if stem in self.models():
                raise FileExistsError(f"a model {stem} is served here already")
            target, made = await asyncio.to_thread(self._copy_file, path, stem)
        except ValueError as exc:
            raise PullError(str(exc), 400) from None
        except FileExistsError as exc:
            raise PullError(str(exc), 409) from None
        try:
            await self._add(stem, target)
        except PullError:
            if made:
                await asyncio.to_thread(folder.remove, on_disk(target))
            raise
        return f"copied {path.name} to {target.name}, served as {stem}" if made else f"serves {target.name} as {stem}"

    def _copy_file(self, path: Path, stem: str) -> tuple[Path, bool]:
        """The copy's file, and whether it was made now (not: the same file is there, linked by another worker)."""
        try:
            return folder.copy(on_disk(path), stem, self._models_dir), True
        except FileExistsError:
            target = self._models_dir / f"{stem}.gguf"
            if not target.samefile(path):
                raise
            return target, False

    async def _add(self, name: str, path: Path) -> None:
        """Serve `name` from `path` on an engine of its own, and remember it for the next start."""
        try:
            engine = await self._start(name, path)
            await engine.start()
        except Exception as exc:
            raise PullError(f"{path.name} was pulled, but llama.cpp cannot serve it: {exc}", 422) from None
        self._added[name] = engine
        self._files[name] = described(on_disk(path))
        self._paths[name] = path
        folder.remember(self._models_dir, name, path)

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
            await self._add(name, path)
        yield {"status": "success", "model": name}
