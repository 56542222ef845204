"""The worker loop: claim jobs while slots are free, run them on the engine, stream events, heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from redis.exceptions import RedisError, ResponseError

from graycat import __version__
from graycat.jobs import CHUNK, Job, JobState, Usage, error_body
from graycat.queue import keys
from graycat.queue.consumer import Claimed, Consumer
from graycat.workers.engines.base import Engine, Pulls, Rescans, Skips
from graycat.workers.engines.loading import Loading
from graycat.workers.engines.supervisor import EngineCrashed
from graycat.workers.gpu import GpuReader
from graycat.workers.pull_requests import serve_pulls
from graycat.workers.usage import Meter

log = logging.getLogger(__name__)
T = TypeVar("T")

HEARTBEAT_S = 2.0
CLAIM_BLOCK_MS = 250  # an idle worker re-checks for a stop request and for jobs handed back this often
CLAIM_GRACE_S = 10.0  # a claim unanswered this long past its block time: the link to Redis is dead
PRESENCE_WAIT_S = 5.0  # for Redis to confirm the presence subscription before the worker registers
LEAVE_TIMEOUT_S = 2.0  # deregistering on the way out; the registry entry expires anyway
RECLAIM_S = 1.0
REFRESHES_KEPT = 16  # ids of the latest refresh requests done, in the heartbeat (the api waits for them)
FINISH_RETRY_S = 60.0


class Backoff:
    """Exponential backoff with full jitter, for reconnecting to Redis."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self.delay = first, cap, first

    def reset(self) -> None:
        self.delay = self.first

    async def wait(self, why: str, stopping: asyncio.Event | None = None) -> None:
        """Sleep the next jittered delay; a set `stopping` event cuts it short."""
        pause = random.uniform(0, self.delay)
        log.warning("%s; retrying in %.2fs", why, pause)
        self.delay = min(self.delay * 2, self.cap)
        if stopping is None:
            await asyncio.sleep(pause)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), pause)


class Emitter:
    """Hands a job's chunks to Redis in order. Chunks wait in a buffer until the job is marked started (so the
    client hears of the start first); after that each is written at once, without waiting for Redis."""

    def __init__(self, consumer: Consumer, job: Job) -> None:
        self._consumer = consumer
        self._job = job
        self._buffer: list[bytes] | None = []
        self.meter = Meter(job)  # counts what the job makes as its chunks pass

    def __call__(self, chunk: bytes) -> None:
        if chunk != b"[DONE]":
            self.meter.feed(chunk)
        if self._buffer is None:
            self._consumer.emit(self._job, [CHUNK + chunk])
        else:
            self._buffer.append(CHUNK + chunk)

    def open(self, runnable: bool) -> None:
        """The job is marked started (or found cancelled: then its chunks are dropped)."""
        buffered, self._buffer = self._buffer or [], None if runnable else []
        if runnable and buffered:
            self._consumer.emit(self._job, buffered)


def _job_fields(job: Job) -> dict[str, str]:
    """The fields of a job's log lines: its ids (the request id joins them to the api's line), never its body."""
    return {
        "job_id": job.id,
        "request_id": job.request_id,
        "kind": job.kind,
        "model": job.model,
        "endpoint": job.endpoint,
    }


def _crashed(task: asyncio.Task[tuple[int, bytes]]) -> bool:
    """Whether the engine died under this run."""
    return task.done() and not task.cancelled() and isinstance(task.exception(), EngineCrashed)


async def _unless_stopping(stopping: asyncio.Event, call: Coroutine[Any, Any, T], limit: float | None) -> T | None:
    """`call`'s result, or None when `stopping` is set before it ends (or before it starts: then it never runs).
    A call unanswered for `limit` seconds raises TimeoutError: the link to Redis is dead (TCP alone would notice
    only after hours). A result that arrives with the stop request is still returned, so the jobs in it are
    handed back rather than left pending."""
    if stopping.is_set():
        call.close()
        return None
    work = asyncio.ensure_future(call)
    stopped = asyncio.ensure_future(stopping.wait())
    ended: set[asyncio.Future[Any]] = set()
    try:
        ended, _ = await asyncio.wait({work, stopped}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    if not ended:
        raise TimeoutError(f"no answer from Redis in {limit} s")
    return None if work.cancelled() else work.result()


@dataclass(eq=False)
class Running:
    """A job this worker holds, from its claim until it is reported, and what happened to it meanwhile."""

    claimed: Claimed
    task: asyncio.Task[None] | None = None  # its whole run: waiting for slots, start, engine, report
    engine: asyncio.Task[tuple[int, bytes]] | None = None  # the engine's part, once it began
    cancelled: bool = False  # its client cancelled it
    releasing: bool = False  # handed back at the stop deadline, for another worker to run
    lost: bool = False  # another worker took it over (this one was presumed dead)

    def stop_engine(self) -> None:
        if self.engine is not None:
            self.engine.cancel()


class Worker:
    """Runs jobs of its engine's pools until asked to stop, then finishes what it holds."""

    def __init__(
        self,
        consumer: Consumer,
        engine: Engine,
        *,
        visibility_timeout: float = 6.0,
        max_deliveries: int = 3,
        job_timeout: float = 600.0,
        stop_timeout: float = 25.0,
        host: str | None = None,
        result_max_bytes: Callable[[str], int] | None = None,
        default: bool = False,
    ) -> None:
        self.consumer = consumer
        self.result_max_bytes = result_max_bytes  # per kind of job: the largest answer stored
        self.engine = engine
        self.default = default  # its first model is the default of requests that name none
        self.visibility_ms = int(visibility_timeout * 1000)
        self.max_deliveries = max_deliveries
        self.job_timeout = job_timeout
        self.stop_timeout = stop_timeout
        self.id = consumer.worker_id
        self.host = host or socket.gethostname()
        self._stopping = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._room = asyncio.Condition()  # signalled when a running job gives its slots back
        self._slots_running = 0
        self._queued = 0  # jobs waiting in `_in_slots` for slots to free
        self._running: dict[str, Running] = {}  # by job id
        self._takeover = asyncio.Event()  # a dead worker's jobs wait to be taken over
        self._present = asyncio.Event()  # subscribed to its presence channel (graycat/queue/presence.py)
        self.started_at = time.time()
        self._outcomes: Counter[str] = Counter()
        self._gpus = GpuReader()
        self._refreshed: deque[str] = deque(maxlen=REFRESHES_KEPT)
        self._refreshing = asyncio.Lock()
        self._refresh_failures: deque[str] = deque(maxlen=REFRESHES_KEPT)  # "<request id> <why>"

    @staticmethod
    def new_id(kind: str) -> str:
        return f"{kind}-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"

    def stop(self) -> None:
        """Stop claiming; jobs already held run to their end, for up to `stop_timeout` seconds."""
        if not self._stopping.is_set():
            log.info("worker %s stopping: finishing %d job(s)", self.id, len(self._running))
        self._stopping.set()
        self._slot_free.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def loading(self) -> bool:
        return isinstance(self.engine, Loading)

    def info(self) -> dict[str, Any]:
        models = list(self.engine.models())
        return {
            "id": self.id,
            "kind": self.engine.kind,
            "kinds": self.consumer.kinds,
            "models": models,
            "loading": self.loading,
            "default": models[0] if self.default and models else None,
            "slots": self.engine.slots,
            "busy": self._slots_held(),
            "jobs": list(self._running),
            "host": self.host,
            "version": __version__,
            "started": self.started_at,
            "heartbeat": time.time(),
            "stopping": self._stopping.is_set(),
            "engine": self.engine.stats(),
            "outcomes": dict(self._outcomes),
            "gpus": self._gpus.read(),
            "refreshed": list(self._refreshed),
            "refresh_failures": list(self._refresh_failures),
            "present": self._present.is_set(),
            "pulls": isinstance(self.engine, Pulls),
        }

    async def run(self, load: Coroutine[Any, Any, Engine] | None = None) -> None:
        """Announce the worker, then run jobs until asked to stop. With `load`, the worker is announced while
        it runs (its engine, a `Loading` stand-in until then, loads): requests for its models wait for it."""
        # Subscribed before it first registers: the api may take a registered worker without a subscriber for
        # dead at once, even one it never saw present.
        presence = asyncio.create_task(
            self._listen("presence", lambda: self.consumer.takeovers(self._present), self._taken_over), name="presence"
        )
        backoff = Backoff()
        while True:
            try:
                await self.consumer.setup()
                async with asyncio.timeout(PRESENCE_WAIT_S):
                    await self._present.wait()
                await self._beat()
                break
            except (RedisError, OSError) as exc:
                if self._stopping.is_set():
                    presence.cancel()
                    await asyncio.gather(presence, return_exceptions=True)
                    return
                await backoff.wait(f"cannot reach Redis ({exc or 'no answer'})", self._stopping)
        helpers = [
            presence,
            asyncio.create_task(self._heartbeats(), name="heartbeat"),
            asyncio.create_task(
                self._listen("cancel", self.consumer.cancellations, self._cancel), name="cancel-listener"
            ),
        ]
        try:
            loaded = load is None or await self._load(load)
        except BaseException:
            await self._leave(helpers)
            raise
        if not loaded:
            await self._leave(helpers)
            log.info("worker %s stopped while loading", self.id)
            return
        if isinstance(self.engine, Rescans):
            rescans = self.engine

            async def refresh(request_id: str) -> None:
                await self.refresh(rescans, request_id)

            helpers.append(
                asyncio.create_task(self._listen("refresh", self.consumer.refreshes, refresh), name="refresh-listener")
            )
        if isinstance(self.engine, Skips):
            skips = self.engine

            async def skip(job_id: str) -> None:
                if job_id in self._running:
                    skips.skip(job_id)

            helpers.append(asyncio.create_task(self._listen("skip", self.consumer.skips, skip), name="skip-listener"))
        if isinstance(self.engine, Pulls):
            helpers.append(asyncio.create_task(self._pulls(self.engine), name="pulls"))
        log.info("worker %s ready: %s x%d slots", self.id, ", ".join(self.engine.models()), self.engine.slots)
        try:
            await self._claim_loop()
            await self._finish_held()
        finally:
            await self._leave(helpers)
        log.info("worker %s stopped", self.id)

    async def _load(self, load: Coroutine[Any, Any, Engine]) -> bool:
        """Wait for the engine while the heartbeat announces it loading; False when asked to stop first."""
        log.info("worker %s loading: %s", self.id, ", ".join(self.engine.models()))
        engine = await _unless_stopping(self._stopping, load, None)
        if engine is None:
            return False
        self.engine = engine
        models = [(kind, model) for model in engine.models() for kind in self.consumer.kinds]
        if models != [(kind, model) for kind, model, _ in self.consumer.pools]:
            self.consumer.set_pools(models)
            await self.consumer.setup()
        await self._beat()
        return True

    async def _leave(self, helpers: list[asyncio.Task[None]]) -> None:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT_S):
                await self.consumer.leave()
        except (RedisError, OSError) as exc:  # its registry entry expires by itself
            log.warning("could not deregister from Redis: %s", exc or "no answer")

    async def _finish_held(self) -> None:
        """Let held jobs end; past the stop deadline, stop them and put them back in their pools, where another
        worker takes them over (their clients see a restart)."""
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self.stop_timeout)
        if late:
            log.warning(
                "worker %s: %d job(s) still running after %g s; handing them back",
                self.id,
                len(late),
                self.stop_timeout,
            )
            for running in self._running.values():
                running.releasing = True
                running.stop_engine()
            await asyncio.gather(*late, return_exceptions=True)

    async def _claim_loop(self) -> None:
        backoff = Backoff()
        next_reclaim = 0.0
        while not self._stopping.is_set():
            free = self.engine.slots - self._slots_held()
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                batch: list[tuple[Claimed, int]] = []
                if self._takeover.is_set() or time.monotonic() >= next_reclaim:  # dead workers' jobs go first
                    self._takeover.clear()
                    next_reclaim = time.monotonic() + RECLAIM_S
                    reclaimed = await _unless_stopping(
                        self._stopping, self.consumer.reclaim(free, self.visibility_ms), CLAIM_GRACE_S
                    )
                    if reclaimed is None:  # asked to stop
                        continue
                    batch = reclaimed
                if not batch:
                    fresh = await _unless_stopping(
                        self._stopping, self.consumer.claim(free, CLAIM_BLOCK_MS), CLAIM_BLOCK_MS / 1000 + CLAIM_GRACE_S
                    )
                    if fresh is None:
                        continue
                    batch = [(c, 1) for c in fresh]
            except ResponseError:  # a command Redis refused is a defect, not an outage: no retrying it
                raise
            except (RedisError, OSError) as exc:
                await backoff.wait(f"claiming failed ({str(exc) or type(exc).__name__})", self._stopping)
                continue
            backoff.reset()
            for claimed, deliveries in batch:
                if self._stopping.is_set():  # claimed while the stop request came in: not ours to run
                    await self.consumer.release(claimed)
                    continue
                if deliveries > 1:
                    log.warning(
                        "job %s taken over from a worker that stopped (delivery %d)",
                        claimed.job.id,
                        deliveries,
                        extra=_job_fields(claimed.job),
                    )
                running = self._running[claimed.job.id] = Running(claimed)
                runner = (
                    self._dead_letter(running, deliveries)
                    if deliveries > self.max_deliveries
                    else self._in_slots(running, self._run(running, deliveries))
                )
                running.task = asyncio.create_task(runner)

    def _slots_of(self, job: Job) -> int:
        """Engine slots a job takes: one per prompt (completion), at most all of them."""
        return min(max(job.slots, 1), self.engine.slots)

    def _slots_held(self) -> int:
        return sum(self._slots_of(r.claimed.job) for r in self._running.values())

    def _forget(self, running: Running) -> None:
        """The job is over for this worker: its slots are free."""
        if self._running.get(running.claimed.job.id) is running:
            del self._running[running.claimed.job.id]
        self._slot_free.set()

    async def _in_slots(self, running: Running, run: Coroutine[Any, Any, None]) -> None:
        """Run `run` once the job's slots are free: a job of several prompts claimed with others waits here
        (held, not started) rather than having the engine queue its prompts in front of theirs. A job that
        fits while none waits takes its slots at once (no lock: the common case costs nothing)."""
        need = self._slots_of(running.claimed.job)
        if self._queued or self._slots_running + need > self.engine.slots:
            self._queued += 1
            try:
                async with self._room:
                    await self._room.wait_for(lambda: self._slots_running + need <= self.engine.slots)
                    self._slots_running += need
            except BaseException:  # never started: it stays in its pool, where a live worker takes it over
                run.close()
                self._forget(running)
                raise
            finally:
                self._queued -= 1
        else:
            self._slots_running += need
        try:
            await run
        finally:
            self._slots_running -= need
            if self._queued:
                async with self._room:
                    self._room.notify_all()

    async def _dead_letter(self, running: Running, deliveries: int) -> None:
        claimed = running.claimed
        try:
            await self.consumer.dead_letter(claimed, deliveries)
            self._outcomes["dead_lettered"] += 1
            log.error(
                "job %s failed after %d deliveries; moved to the dead-letter registry",
                claimed.job.id,
                deliveries,
                extra=_job_fields(claimed.job),
            )
        except Exception:
            log.exception("could not dead-letter job %s", claimed.job.id)
        finally:
            self._forget(running)

    async def _run(self, running: Running, deliveries: int) -> None:
        claimed = running.claimed
        job = claimed.job
        began = time.monotonic()
        waited = time.time() - job.created  # the api's clock against this host's: skew shows here
        emitter = Emitter(self.consumer, job)
        engine_task: asyncio.Task[tuple[int, bytes]] | None = None
        if deliveries == 1:  # the engine starts at once; marking the job active (one round trip) runs beside it
            engine_task = running.engine = asyncio.create_task(self.engine.run(job, emitter))
        try:
            try:
                runnable = await self.consumer.start(job)
            except BaseException:
                if engine_task is not None:
                    engine_task.cancel()
                    await asyncio.gather(engine_task, return_exceptions=True)
                raise
            # A job taken over from a stopped worker reaches the engine only once marked active: its client may
            # have left long ago (a task cancelled before its first step never runs its code).
            if engine_task is None:
                engine_task = running.engine = asyncio.create_task(self.engine.run(job, emitter))
            emitter.open(runnable)
            if not runnable or running.cancelled:  # cancelled while it waited, or just now
                running.cancelled = True
                engine_task.cancel()
            elif running.releasing:
                engine_task.cancel()
            await asyncio.wait({engine_task}, timeout=self.job_timeout)
            if running.releasing:
                await asyncio.gather(engine_task, return_exceptions=True)
                await self.consumer.release(claimed)
                return
            if running.lost:  # another worker runs it now and answers its client
                await asyncio.gather(engine_task, return_exceptions=True)
                return
            if not engine_task.done():  # past its run deadline
                engine_task.cancel()
                await asyncio.gather(engine_task, return_exceptions=True)
                status, body, state = (
                    504,
                    error_body(504, "the job ran past JOB_TIMEOUT", "timeout_error"),
                    JobState.FAILED,
                )
            else:
                status, body, state = await self._outcome(running, engine_task)
            usage = emitter.meter.usage(status, body, state, runnable)
            crashed = _crashed(engine_task)
            if crashed:  # a poison job: it is not handed to another worker
                await self.consumer.keep_dead(claimed, deliveries, orjson.loads(body)["error"]["message"])
            status, body, state = self._bounded(job, status, body, state)  # what was generated still counts
            await self._finish(claimed, status, body, state, runnable, usage)  # after every chunk, same connection
            self._outcomes["engine_crashed" if crashed else state.value] += 1
            if log.isEnabledFor(logging.INFO):  # its fields are built only for a line that is written
                log.info(
                    "job %s %s (%d)",
                    job.id,
                    state.value,
                    status,
                    extra={
                        **_job_fields(job),
                        "state": state.value,
                        "status": status,
                        "wait_ms": round(waited * 1000, 1),
                        "run_ms": round((time.monotonic() - began) * 1000, 1),
                    },
                )
        except Exception:
            log.exception(
                "could not run or report job %s; it stays pending for reclaim", job.id, extra=_job_fields(job)
            )
        finally:
            self._forget(running)

    async def _outcome(
        self, running: Running, engine_task: asyncio.Task[tuple[int, bytes]]
    ) -> tuple[int, bytes, JobState]:
        job = running.claimed.job
        try:
            status, body = await engine_task
        except asyncio.CancelledError:
            if not engine_task.cancelled() or not running.cancelled:
                raise
            return 499, error_body(499, "cancelled", "cancelled"), JobState.CANCELLED
        except EngineCrashed as exc:
            log.error("job %s: %s", job.id, exc, extra=_job_fields(job))
            return 502, error_body(502, str(exc), "engine_crashed"), JobState.FAILED
        except Exception as exc:
            log.exception("job %s failed on the engine", job.id, extra=_job_fields(job))
            return 502, error_body(502, str(exc), "server_error"), JobState.FAILED
        return status, body, JobState.COMPLETED if status < 400 else JobState.FAILED

    def _bounded(self, job: Job, status: int, body: bytes, state: JobState) -> tuple[int, bytes, JobState]:
        """The outcome to store: an answer over the size limit of its kind is replaced by a 413 error."""
        limit = self.result_max_bytes(job.kind) if self.result_max_bytes else 0
        if not limit or len(body) <= limit:
            return status, body, state
        log.warning(
            "job %s answered %d bytes, over the limit of %d: not stored",
            job.id,
            len(body),
            limit,
            extra=_job_fields(job),
        )
        message = (
            f"the answer ({len(body) / 2**20:.1f} MiB) is larger than this server stores "
            f"({limit / 2**20:g} MiB, RESULT_MAX_MB); ask for less"
        )
        return 413, error_body(413, message, "result_too_large"), JobState.FAILED

    async def _finish(
        self, claimed: Claimed, status: int, body: bytes, state: JobState, ran: bool, usage: Usage
    ) -> None:
        """Report the end, retrying through a Redis outage of up to FINISH_RETRY_S seconds."""
        backoff = Backoff()
        deadline = time.monotonic() + FINISH_RETRY_S
        while True:
            try:
                await self.consumer.finish(claimed, status, body, state, ran=ran, usage=usage)
                return
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise
                await backoff.wait(f"reporting job {claimed.job.id} failed ({exc})")

    async def _beat(self) -> None:
        lost = await self.consumer.heartbeat(
            self.info(),
            keys.WORKER_TTL_S,
            [r.claimed for r in self._running.values()],
            self.engine.models(),
            loading=self.loading,
        )
        for claimed in lost:
            running = self._running.get(claimed.job.id)
            if running is not None and not running.lost:
                log.warning(
                    "job %s was taken over by another worker while this one was out of touch; stopping it",
                    claimed.job.id,
                    extra=_job_fields(claimed.job),
                )
                running.lost = True
                running.stop_engine()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._beat()
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)

    async def _listen(
        self, what: str, messages: Callable[[], AsyncIterator[str]], handle: Callable[[str], Awaitable[None]]
    ) -> None:
        """Handle each message of a pub/sub channel until cancelled, resubscribing at once after a lost
        connection (backing off while Redis stays unreachable)."""
        backoff = Backoff()
        while True:
            began = time.monotonic()
            try:
                async for message in messages():
                    await handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - began > backoff.cap:
                    backoff.reset()
                await backoff.wait(f"{what} listener lost Redis ({exc})")

    async def models_changed(self, before: set[str]) -> None:
        """The engine's models are no longer `before`: claim from the pools of those it serves now, and
        announce them at once."""
        models = set(self.engine.models())
        if models == before:
            return
        self.consumer.set_pools([(kind, model) for model in sorted(models) for kind in self.consumer.kinds])
        await self.consumer.setup()
        self._slot_free.set()  # a model added brings slots of its own: a claim loop waiting for one goes on
        log.info(
            "models now: %s (added: %s; removed: %s)",
            ", ".join(sorted(models)) or "none",
            ", ".join(sorted(models - before)) or "none",
            ", ".join(sorted(before - models)) or "none",
        )
        await self._beat()

    async def _pulls(self, engine: Pulls) -> None:
        """Take model pulls from the queue until the worker stops, backing off while Redis stays unreachable."""
        backoff = Backoff()
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                await serve_pulls(self, engine)
            except (RedisError, OSError) as exc:
                if time.monotonic() - began > backoff.cap:
                    backoff.reset()
                await backoff.wait(f"taking pulls failed ({exc or type(exc).__name__})", self._stopping)

    async def _taken_over(self, worker_id: str) -> None:
        self._takeover.set()

    async def _cancel(self, job_id: str) -> None:
        running = self._running.get(job_id)
        if running is not None and not running.cancelled:
            running.cancelled = True
            running.stop_engine()

    async def refresh(self, engine: Rescans, request_id: str) -> None:
        """Rescan the engine's models, claim from the pools of the models found and announce them at once, with
        `request_id` among the refreshes done (a rescan that fails keeps the models known before and is listed
        with its reason)."""
        async with self._refreshing:
            if request_id in self._refreshed:  # the api repeats a request until every worker has done it
                return
            before = set(self.engine.models())
            try:
                await engine.rescan()
            except Exception as exc:
                log.exception("rescanning the models failed; still serving %s", ", ".join(sorted(before)))
                self._refresh_failures.append(f"{request_id} {exc}")
            await self.models_changed(before)
            self._refreshed.append(request_id)
            await self._beat()
