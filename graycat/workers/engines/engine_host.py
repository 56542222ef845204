"""The child side of an engine in its own process: serves one engine object to its worker over a Unix socket
(frames.py). The worker sends `run` (a job), `cancel`, `skip` and `rescan`; the host answers with the job's
`emit`s and its `result` (or `error`, or `cancelled`), `rescanned`, and a `state` (models, figures) at start,
after every job and rescan, and every few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from graycat.jobs import Job
from graycat.workers.engines.base import Engine, Rescans, Skips
from graycat.workers.engines.child import announce, refuse, wait_for_parent
from graycat.workers.engines.frames import read_frame, write_frame

log = logging.getLogger(__name__)
STATE_EVERY_S = 2.0  # as often as the worker heartbeats, which carries the figures


async def host(make: Callable[[], Awaitable[Engine]]) -> None:
    """Start the engine `make` builds, announce the socket it is served on, and serve it until the worker
    closes our stdin or dies. The socket lives in a private folder (0700) and is removed once the worker has
    connected: no one else can connect."""
    folder = Path(tempfile.mkdtemp(prefix="graycat-engine-"))
    path = folder / "engine.sock"

    def forget() -> None:
        with contextlib.suppress(OSError):
            path.unlink()
            folder.rmdir()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        forget()
        await _Session(engine, reader, writer).serve()

    try:
        engine = await make()
        await asyncio.start_unix_server(connected, path)
    except Exception as exc:
        refuse(exc)
    announce(str(path))
    await asyncio.to_thread(wait_for_parent)


class _Session:
    """The worker's connection: jobs run as tasks, their messages go out in order."""

    def __init__(self, engine: Engine, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.engine, self.reader, self.writer = engine, reader, writer
        self.jobs: dict[str, asyncio.Task[None]] = {}
        self.rescans: set[asyncio.Task[None]] = set()

    def send(self, header: dict[str, Any], data: bytes = b"") -> None:
        write_frame(self.writer, header, data)

    def send_state(self) -> None:
        self.send(
            {
                "op": "state",
                "kind": self.engine.kind,
                "slots": self.engine.slots,
                "models": self.engine.models(),
                "stats": self.engine.stats(),
            }
        )

    async def serve(self) -> None:
        self.send_state()
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                header, data = await read_frame(self.reader)
                op, job_id = header["op"], header.get("id", "")
                if op == "run":
                    job = Job(body=data, id=job_id, **header["job"])
                    self.jobs[job_id] = asyncio.create_task(self._run(job))
                elif op == "cancel" and (task := self.jobs.get(job_id)) is not None:
                    task.cancel()
                elif op == "skip" and isinstance(self.engine, Skips):
                    self.engine.skip(job_id)
                elif op == "rescan" and isinstance(self.engine, Rescans):
                    rescan = asyncio.create_task(self._rescan(self.engine, header["seq"]))
                    self.rescans.add(rescan)
                    rescan.add_done_callback(self.rescans.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.info("the worker closed its engine connection")
        finally:
            ticker.cancel()
            for task in self.jobs.values():
                task.cancel()

    async def _run(self, job: Job) -> None:
        try:
            status, body = await self.engine.run(job, lambda chunk: self.send({"op": "emit", "id": job.id}, chunk))
            self.send({"op": "result", "id": job.id, "status": status}, body)
        except asyncio.CancelledError:
            self.send({"op": "cancelled", "id": job.id})
        except Exception as exc:
            log.exception("job %s failed on the engine", job.id)
            self.send({"op": "error", "id": job.id, "message": str(exc)})
        finally:
            del self.jobs[job.id]
            self.send_state()

    async def _rescan(self, engine: Rescans, seq: int) -> None:
        error = None
        try:
            await engine.rescan()
        except Exception as exc:
            log.exception("rescanning the models failed")
            error = str(exc)
        self.send_state()
        self.send({"op": "rescanned", "seq": seq, "error": error})

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(STATE_EVERY_S)
            with contextlib.suppress(ConnectionError):
                self.send_state()
