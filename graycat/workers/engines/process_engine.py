"""The worker side of an engine served from a supervised child process (engine_host.py): runs, cancels and
skips jobs and rescans models by message, and fails the jobs running when the child dies with EngineCrashed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

from graycat.jobs import Job
from graycat.workers.engines.base import Emit
from graycat.workers.engines.frames import read_frame, write_frame
from graycat.workers.engines.supervisor import Child, EngineProcess, EngineStartError

log = logging.getLogger(__name__)


class EngineFailed(Exception):
    """The engine raised an error running the job (its message)."""


@dataclass(eq=False)
class _Link:
    """The connection to one run of the child, and the jobs and rescans waiting for its answers."""

    child: Child
    writer: asyncio.StreamWriter
    runs: dict[str, tuple[Emit, asyncio.Future[tuple[int, bytes] | None]]] = field(default_factory=dict)
    rescans: dict[int, asyncio.Future[str | None]] = field(default_factory=dict)
    reader_task: asyncio.Task[None] | None = None


class ProcessEngine:
    """An engine (kind `kind`) in the child process that `process` supervises; models and figures are the ones
    the child reported last."""

    def __init__(self, kind: str, process: EngineProcess) -> None:
        self.kind = kind
        self.process = process
        self.slots = 1
        self._models: dict[str, dict[str, Any]] = {}
        self._stats: dict[str, Any] = {}
        self._link: _Link | None = None
        self._connecting = asyncio.Lock()
        self._seq = itertools.count()
        self._state_seen = asyncio.Event()

    def models(self) -> dict[str, dict[str, Any]]:
        return self._models

    def stats(self) -> dict[str, Any]:
        return {**self._stats, "process": self.process.stats()}

    async def start(self) -> None:
        await self.process.start()
        link = await self._connected()
        assert link.reader_task is not None
        state = asyncio.ensure_future(self._state_seen.wait())
        await asyncio.wait({state, link.reader_task}, return_when=asyncio.FIRST_COMPLETED)
        if not state.done():
            state.cancel()
            raise EngineStartError(f"the {self.kind} engine process died as it started")

    async def _connected(self) -> _Link:
        """The link to the running child, connecting to it (after a restart: to the new one) when needed."""
        async with self._connecting:
            if self._link is None or self._link.child.ended.is_set() or self._link.writer.is_closing():
                child = await self.process.current()
                reader, writer = await asyncio.open_unix_connection(child.address)
                self._state_seen.clear()
                link = self._link = _Link(child, writer)
                link.reader_task = asyncio.create_task(self._read(link, reader), name=f"{self.kind}-engine-link")
            return self._link

    async def _read(self, link: _Link, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header, data = await read_frame(reader)
                self._handle(link, header, data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        link.writer.close()
        if not await link.child.died():  # connected but unusable: a new engine is the way out
            log.error("lost the connection to the %s engine process; restarting it", self.kind)
            link.child.proc.kill()
            await link.child.died()
        for _, future in link.runs.values():
            if not future.done():
                future.set_exception(link.child.crash())
        for waiting in link.rescans.values():
            if not waiting.done():
                waiting.set_result("the engine process died")

    def _handle(self, link: _Link, header: dict[str, Any], data: bytes) -> None:
        op = header["op"]
        if op == "state":
            self.slots, self._models, self._stats = header["slots"], header["models"], header["stats"]
            self._state_seen.set()
        elif op == "rescanned":
            if (rescan := link.rescans.pop(header["seq"], None)) is not None and not rescan.done():
                rescan.set_result(header["error"])
        elif (run := link.runs.get(header["id"])) is not None:
            emit, future = run
            if op == "emit":
                emit(data)
            elif future.done():
                pass
            elif op == "result":
                future.set_result((header["status"], data))
            elif op == "cancelled":
                future.set_result(None)
            elif op == "error":
                future.set_exception(EngineFailed(header["message"]))

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        link = await self._connected()
        future: asyncio.Future[tuple[int, bytes] | None] = asyncio.get_running_loop().create_future()
        link.runs[job.id] = (emit, future)
        try:
            write_frame(
                link.writer,
                {
                    "op": "run",
                    "id": job.id,
                    "job": {
                        "kind": job.kind,
                        "model": job.model,
                        "endpoint": job.endpoint,
                        "stream": job.stream,
                        "reply_to": job.reply_to,
                        "request_id": job.request_id,
                        "created": job.created,
                    },
                },
                job.body,
            )
            try:
                answer = await asyncio.shield(future)
            except asyncio.CancelledError:  # stop it there, and wait until it has stopped (or the child died)
                if not link.writer.is_closing():
                    write_frame(link.writer, {"op": "cancel", "id": job.id})
                with contextlib.suppress(Exception):
                    await future
                raise
            if answer is None:  # cancelled in the child, but not from here
                raise EngineFailed("the engine cancelled the job")
            return answer
        finally:
            link.runs.pop(job.id, None)

    def skip(self, job_id: str) -> None:
        if self._link is not None and not self._link.writer.is_closing():
            write_frame(self._link.writer, {"op": "skip", "id": job_id})

    async def rescan(self) -> None:
        link = await self._connected()
        seq = next(self._seq)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        link.rescans[seq] = future
        write_frame(link.writer, {"op": "rescan", "seq": seq})
        if (error := await future) is not None:
            raise EngineFailed(error)

    async def close(self) -> None:
        if self._link is not None:
            self._link.writer.close()
            if self._link.reader_task is not None:
                self._link.reader_task.cancel()
                await asyncio.gather(self._link.reader_task, return_exceptions=True)
        await self.process.close()
