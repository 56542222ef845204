"""Engines in supervised child processes: a native crash ends the child, never the worker. The supervisor
starts the child, learns its address from its first line on stdout, restarts it whenever it dies, and tells
the jobs that were running on it that it crashed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field

from graycat.workers.engines.child import ERROR_PREFIX, PARENT_ENV

log = logging.getLogger(__name__)

CRASH_NOTICE_S = 2.0  # a lost connection is blamed on a crash if the child's exit is seen within this long
CLOSE_TIMEOUT_S = 10.0
RESTART_BACKOFF_S = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0)  # waits before successive restarts that fail at once
STABLE_S = 60.0  # a child that ran this long resets the backoff


class EngineCrashed(Exception):
    """The engine process died while it ran the job."""


class EngineStartError(RuntimeError):
    """The engine process could not start (the reason is its own)."""


@dataclass(eq=False)
class Child:
    """One run of the engine process."""

    proc: asyncio.subprocess.Process
    address: str
    started: float
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def died(self, within: float = CRASH_NOTICE_S) -> bool:
        """Whether this run of the engine has ended, waiting up to `within` seconds for its exit to be seen
        (a dropped connection is noticed a moment before the exit)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), within)
        return self.ended.is_set()

    def crash(self) -> EngineCrashed:
        """The error of a job that was running on this run of the engine when it died."""
        return EngineCrashed(
            f"the engine crashed while running this job ({_how(self.proc.returncode)}); the job is not retried"
        )


class EngineProcess:
    """`python -m <module> <args>` as a supervised child: started by `start`, restarted when it dies until
    `close`. `current` waits through a restart, so jobs claimed meanwhile run once the engine is back."""

    def __init__(self, module: str, args: list[str], name: str) -> None:
        self.argv = [sys.executable, "-m", module, *args]
        self.name = name
        self.restarts = 0
        self._child: Child | None = None
        self._up = asyncio.Event()
        self._closing = False
        self._watcher: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Start the engine and return its address (the first start's failure is raised)."""
        child = await self._spawn()
        self._watcher = asyncio.create_task(self._watch(child), name=f"{self.name}-supervisor")
        return child.address

    async def current(self) -> Child:
        """The running engine, once it is up."""
        while True:
            await self._up.wait()
            if self._child is not None and not self._child.ended.is_set():
                return self._child

    def stats(self) -> dict[str, object]:
        return {"restarts": self.restarts, "up": self._up.is_set()}

    async def _spawn(self) -> Child:
        # From the event loop's thread: the child's PR_SET_PDEATHSIG fires when the thread that forked it ends.
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, PARENT_ENV: str(os.getpid())},
        )
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode().strip()
        if not line or line.startswith(ERROR_PREFIX):
            code = await proc.wait()
            raise EngineStartError(
                line.removeprefix(ERROR_PREFIX)
                or f"the {self.name} engine process ended ({_how(code)}) before it was ready"
            )
        self._child = Child(proc, line, asyncio.get_running_loop().time())
        self._up.set()
        log.info("%s engine process %d up at %s", self.name, proc.pid, self._child.address)
        return self._child

    async def _watch(self, child: Child) -> None:
        failures = 0
        while True:
            code = await child.proc.wait()
            self._up.clear()
            child.ended.set()
            if self._closing:
                return
            log.error("%s engine process %d died (%s); restarting it", self.name, child.proc.pid, _how(code))
            if asyncio.get_running_loop().time() - child.started > STABLE_S:
                failures = 0
            while True:
                await asyncio.sleep(RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)])
                failures += 1
                try:
                    child = await self._spawn()
                    break
                except Exception:
                    log.exception("restarting the %s engine failed", self.name)
            self.restarts += 1

    async def close(self) -> None:
        """Stop the engine: its stdin closes (it exits), then SIGKILL if it lingers."""
        self._closing = True
        child = self._child
        if child is not None and child.proc.returncode is None:
            assert child.proc.stdin is not None
            child.proc.stdin.close()
            try:
                await asyncio.wait_for(child.proc.wait(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                child.proc.kill()
                await child.proc.wait()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)


def _how(code: int | None) -> str:
    """How a process ended, from its return code."""
    return f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
