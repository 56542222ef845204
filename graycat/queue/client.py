"""The api side of the queue: submit jobs, cancel them, and read what workers announce."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from graycat.jobs import END, Job, JobState, end_event, error_body, parse_end
from graycat.queue import keys, refresh, scripts
from graycat.queue.admission import RequestCounts
from graycat.queue.cached import Cached
from graycat.queue.hub import EventHub, Subscription, entry_key
from graycat.queue.replies import entries, text
from graycat.queue.resp import PipelinedConnection

log = logging.getLogger(__name__)

MODELS_CACHE_S = 2.0
SERVED_CACHE_S = 1.0  # how long the live workers' view is reused (a worker that joins or leaves shows after it)
# Cumulative per-pool counters kept in the pool's stats hash (graycat/queue/keys.py pool_stats).
# The end of a job no worker took before its queue deadline (scripts.EXPIRE_WAITING).
_EXPIRED = end_event(504, error_body(504, "no worker took the job before its queue deadline", "timeout_error"))
POOL_COUNTERS = ("completed", "failed", "cancelled", "expired", "redelivered", "dead_lettered")


def served_models(workers: list[dict[str, Any]]) -> set[str]:
    """The models that the given worker heartbeats serve."""
    return {model for worker in workers for model in worker.get("models", [])}


def worker_pools(worker: dict[str, Any]) -> list[tuple[str, str]]:
    """The (kind, model) pools a worker reads, as its heartbeat announces them."""
    return [
        (kind, model)
        for kind in (worker.get("kinds") or [worker.get("kind", "")])
        for model in worker.get("models", [])
    ]


@dataclass(frozen=True, slots=True)
class Served:
    """What the live workers serve, as of their heartbeats: the (kind, model) pools they read (a worker whose
    engine still loads included), the models no ready worker serves yet, and the models workers declare default."""

    pools: frozenset[tuple[str, str]] = frozenset()
    loading: frozenset[str] = frozenset()
    defaults: frozenset[str] = frozenset()

    @classmethod
    def of(cls, workers: list[dict[str, Any]]) -> Served:
        pools = {pool for w in workers for pool in worker_pools(w)}
        ready = {model for w in workers if not w.get("loading") for model in w.get("models", [])}
        return cls(
            frozenset(pools),
            frozenset(served_models(workers) - ready),
            frozenset(str(w["default"]) for w in workers if w.get("default")),
        )

    def models(self, kind: str | None = None) -> list[str]:
        """The models served (for jobs of `kind`, when given), by name."""
        return sorted({model for k, model in self.pools if kind is None or k == kind})

    def kinds_of(self, model: str) -> set[str]:
        return {kind for kind, m in self.pools if m == model}


class QueueFull(Exception):
    """The pool (or the token, when `per_token`) already has its limit of waiting jobs."""

    def __init__(self, waiting: int, retry_after: int, per_token: bool = False) -> None:
        super().__init__(f"{waiting} jobs are waiting")
        self.waiting = waiting
        self.retry_after = retry_after
        self.per_token = per_token


class JobQueue:
    """Submits jobs to pools and tracks the models that workers serve."""

    def __init__(
        self,
        redis: aioredis.Redis,
        writer: PipelinedConnection,
        hub: EventHub,
        *,
        record_ttl: int,
        max_waiting: int = 0,
        max_waiting_per_token: int = 0,
        queue_timeout: float = 120.0,
    ) -> None:
        self.redis = redis
        self.max_waiting = max_waiting
        self.max_waiting_per_token = max_waiting_per_token
        self.queue_timeout = queue_timeout
        self.writer = writer
        self.hub = hub
        self.record_ttl = record_ttl
        self._models: Cached[dict[str, dict[str, Any]]] = Cached(self._read_models, MODELS_CACHE_S, {})
        self._served = Cached(self._read_served, SERVED_CACHE_S, Served())
        self._background: set[asyncio.Task[Any]] = set()
        self._request_counts = RequestCounts()

    async def submit(
        self, job: Job, owner: str = "", worker: str | None = None, holds: tuple[str, ...] = ()
    ) -> Subscription:
        """Enqueue `job` (for `worker` when given: its direct lane) and return the subscription to its events,
        which this api process receives."""
        job.reply_to = self.hub.channel
        sub = self.hub.open(job.id)
        try:
            await self.enqueue(job, owner, worker, holds)
        except BaseException:
            self.hub.close(sub)
            raise
        return sub

    async def enqueue(self, job: Job, owner: str = "", worker: str | None = None, holds: tuple[str, ...] = ()) -> None:
        """Write the job record and queue the job (in `worker`'s direct lane when given), in one atomic round
        trip; QueueFull when the pool is full. `holds`: record fields naming what the job holds until it ends
        (its quota reservation, its place in flight; see scripts.RELEASE_HOLDS)."""
        stream = keys.direct_lane(worker, job.kind, job.model) if worker else keys.pool(job.kind, job.model)
        registry = () if worker else (keys.POOLS,)
        job.owner = owner
        record: tuple[str | int, ...] = (
            "state",
            JobState.PENDING.value,
            "kind",
            job.kind,
            "model",
            job.model,
            "endpoint",
            job.endpoint,
            "stream",
            int(job.stream),
            "created",
            repr(job.created),
            "owner",
            owner,
            "reply",
            job.reply_to,
            "request_id",
            job.request_id,
            *holds,
        )
        fields = [part for pair in job.to_fields().items() for part in pair]
        now = time.time()
        per_token = self.max_waiting_per_token if owner else 0
        entry = await scripts.ENQUEUE.run(
            self.writer,
            job=keys.job(job.id),
            stream=stream,
            waiting=keys.waiting_of(owner),
            registry=registry,
            ttl=self.record_ttl,
            pool_limit=self.max_waiting,
            owner_limit=per_token,
            now=now,
            oldest=now - self.queue_timeout - 5,
            n=len(record),
            record=record,
            fields=fields,
        )
        if isinstance(entry, tuple):
            refused, waiting = entry
            raise QueueFull(
                waiting,
                await self._retry_after(job.kind, job.model, waiting),
                per_token=refused is scripts.Refused.OWNER_FULL,
            )

    async def record(self, job_id: str) -> dict[str, str] | None:
        """The job record, None when unknown or expired."""
        raw = await self.redis.hgetall(keys.job(job_id))
        return {text(k): text(v) for k, v in raw.items()} or None

    async def position(self, kind: str, model: str, entry_id: str) -> int | None:
        """How many jobs of the pool will be handed out before this waiting one (None: not waiting)."""
        pool = keys.pool(kind, model)
        last = "0-0"
        for group in await self.redis.xinfo_groups(pool) if await self.redis.exists(pool) else []:
            if group["name"] in (keys.GROUP, keys.GROUP.encode()):
                last = text(group["last-delivered-id"])
        if entry_key(entry_id.encode()) <= entry_key(last.encode()):
            return None
        ahead = entries(await self.redis.xrange(pool, min=f"({last}", max=entry_id, count=self.max_waiting or 10_000))
        return max(0, len(ahead) - 1)

    async def result(self, job_id: str) -> tuple[int, bytes] | None:
        """The final (status, body) of a finished job, from its last event."""
        last = entries(await self.redis.xrevrange(keys.events(job_id), count=1))
        if last and last[0][1][b"e"][:1] == END:
            return parse_end(last[0][1][b"e"][1:])
        return None

    async def _retry_after(self, kind: str, model: str, waiting: int) -> int:
        """Seconds until the waiting jobs are likely served, from the pool's throughput of the last minutes."""
        minute = int(time.time() // 60)
        counts = await self.redis.mget([keys.pool_minute(kind, model, minute - i) for i in (1, 2)])
        per_second = sum(int(c or 0) for c in counts) / 120
        return max(1, min(300, math.ceil(waiting / per_second))) if per_second > 0 else 30

    async def cancel(self, job_id: str, state: JobState = JobState.CANCELLED, end: bytes | None = None) -> None:
        """Cancel a job: a waiting one never starts (it ends with `end`, by default the state's), a running one
        stops within about a token."""
        status, reason = (504, "no worker took the job in time") if state == JobState.EXPIRED else (499, "cancelled")
        end = end or end_event(status, error_body(status, reason, state.value))
        await scripts.CANCEL.run(
            self.redis,
            job=keys.job(job_id),
            cancel_flag=keys.cancel_flag(job_id),
            events=keys.events(job_id),
            state=state.value,
            ttl=self.record_ttl,
            now=time.time(),
            channel=keys.CANCEL_CHANNEL,
            job_id=job_id,
            end_event=end,
        )

    def cancel_soon(self, job_id: str, state: JobState = JobState.CANCELLED) -> None:
        """Cancel from a context that may itself be cancelled (a closing stream)."""
        task = asyncio.get_running_loop().create_task(self._cancel_logged(job_id, state))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel_logged(self, job_id: str, state: JobState) -> None:
        try:
            await self.cancel(job_id, state)
        except Exception:
            log.exception("could not cancel job %s", job_id)

    async def skip(self, job_id: str) -> None:
        """Ask the worker running an image job to skip its current image and go on with the next."""
        await self.redis.publish(keys.SKIP_CHANNEL, job_id)

    async def models(self, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """Models announced by workers (name -> info), cached for a moment."""
        return await self._models.get(fresh=fresh)

    async def _read_models(self) -> dict[str, dict[str, Any]]:
        return {text(k): orjson.loads(v) for k, v in (await self.redis.hgetall(keys.MODELS)).items()}

    async def served(self, *, fresh: bool = False) -> Served:
        """What the live workers serve, cached for a moment (the hot path reads it without a round trip)."""
        return await self._served.get(fresh=fresh)

    async def _read_served(self) -> Served:
        return Served.of(await self.live_workers())

    async def live_workers(self) -> list[dict[str, Any]]:
        """Heartbeats of the workers seen in the last WORKER_TTL_S seconds."""
        return await refresh.live_workers(self.redis)

    async def served_models(self, kind: str | None = None, *, fresh: bool = True) -> dict[str, dict[str, Any]]:
        """Each model a live worker (of `kind`, when given) serves -> what its workers announced of it ({} before
        they did), by name. Not `fresh`: the announcements are read again only when one of them is missing."""
        live = served_models([w for w in await self.live_workers() if kind is None or w.get("kind") == kind])
        known = await self.models(fresh=fresh)
        if not fresh and not live <= set(known):
            known = await self.models(fresh=True)
        return {model: known.get(model, {}) for model in sorted(live)}

    async def pool_counters(self) -> list[dict[str, Any]]:
        """Per pool, in two round trips for all pools: waiting and active jobs, the age of the oldest waiting
        one, and the cumulative counters (completed, failed, cancelled, expired, redelivered, dead_lettered)."""
        served = {keys.pool(kind, model) for kind, model in (await self.served()).pools}
        pools = sorted(served.union(await self.pools()))
        if not pools:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for pool in pools:
                kind, model = keys.parse_pool(pool)
                pipe.exists(pool)
                pipe.xlen(pool)
                pipe.xpending(pool, keys.GROUP)
                pipe.hgetall(keys.pool_stats(kind, model))
                pipe.xinfo_groups(pool)
            replies = await pipe.execute(raise_on_error=False)
        result, gone = [], []
        for i, pool in enumerate(pools):
            exists, length, pending, stats, groups = replies[5 * i : 5 * i + 5]
            if exists == 0:
                gone.append(pool)
                continue
            kind, model = keys.parse_pool(pool)
            active = int(pending["pending"]) if isinstance(pending, dict) else 0
            stats = {text(k): int(v) for k, v in stats.items()} if isinstance(stats, dict) else {}
            last = (
                next((g["last-delivered-id"] for g in groups if g["name"] in (keys.GROUP, keys.GROUP.encode())), b"0-0")
                if isinstance(groups, list)
                else b"0-0"
            )
            result.append(
                {
                    "kind": kind,
                    "model": model,
                    "waiting": int(length) - active,
                    "active": active,
                    "oldest_wait_s": 0.0,
                    "_last": text(last),
                    **{name: stats.get(name, 0) for name in POOL_COUNTERS},
                }
            )
        waiting = [p for p in result if p["waiting"] > 0]
        if waiting:
            async with self.redis.pipeline(transaction=False) as pipe:
                for p in waiting:  # the first entry past the group's last delivery: the oldest waiting job
                    pipe.xrange(keys.pool(p["kind"], p["model"]), min=f"({p['_last']}", count=1)
                firsts = await pipe.execute(raise_on_error=False)
            now_ms = time.time() * 1000
            for p, first in zip(waiting, firsts, strict=True):
                if isinstance(first, list) and first:
                    p["oldest_wait_s"] = max(0.0, (now_ms - int(first[0][0].split(b"-")[0])) / 1000)
        for p in result:
            del p["_last"]
        if gone:  # deleted by hand, or lost with Redis's data
            await self.redis.srem(keys.POOLS, *gone)
        return result

    async def pools(self) -> list[str]:
        """The pool streams known to exist (keys.POOLS)."""
        return [text(pool) for pool in await self.redis.smembers(keys.POOLS)]

    async def register_pools(self, *, scan: bool = False) -> None:
        """Add the pools of the live workers to the registry (they create theirs without queueing a job); with
        `scan`, also every pool stream in Redis (once at start: pools from before the registry existed)."""
        found = {keys.pool(kind, model) for kind, model in (await self.served()).pools}
        if scan:
            found.update([text(key) async for key in self.redis.scan_iter(match=keys.POOL_PATTERN, count=1000)])
        if found:
            await self.redis.sadd(keys.POOLS, *found)

    def count_request(self, owner: str, day: str, *, failed: bool) -> None:
        """Count an answered request in its owner's usage of `day` (written by `write_request_counts`)."""
        self._request_counts.add(owner, day, failed=failed)

    def write_request_counts(self) -> None:
        """Send the requests counted since the last call into the owners' daily usage (see RequestCounts)."""
        self._request_counts.write(self.writer)

    async def usage_of_day(self, day: str) -> dict[str, dict[str, int]]:
        """Every token's usage on `day` (YYYY-MM-DD, UTC): fingerprint -> what was counted -> how much. The
        requests this process counted are written first, so they are in it."""
        with contextlib.suppress(RedisError, OSError):
            self.write_request_counts()
            await self.writer.call("PING")  # after the counts: Redis has applied them
        found: dict[str, dict[str, int]] = {}
        async for key in self.redis.scan_iter(match=keys.usage("*", day), count=500):
            owner = text(key).removeprefix(f"{keys.PREFIX}:usage:").removesuffix(f":{day}")
            found[owner] = {text(k): int(v) for k, v in (await self.redis.hgetall(key)).items()}
        return found

    async def worker_available(self, worker_id: str) -> bool:
        """Whether a worker is alive and not stopping (as of its last heartbeat)."""
        beat = await self.redis.get(keys.worker(worker_id))
        return beat is not None and not orjson.loads(beat).get("stopping")

    async def rescue_lanes(self) -> int:
        """Move the jobs in the direct lanes of workers that are gone to their pools; how many moved."""
        moved = 0
        for lane in await self.redis.smembers(keys.DIRECT_LANES):
            worker_id, kind, model = keys.parse_direct_lane(text(lane))
            n = await scripts.RESCUE_LANE.run(
                self.writer,
                lane=lane,
                heartbeat=keys.worker(worker_id),
                pool=keys.pool(kind, model),
                lanes=keys.DIRECT_LANES,
            )
            moved += max(n, 0)
        return moved

    async def pool_status(self) -> list[dict[str, Any]]:
        """Per pool: the counters of `pool_counters`, and the jobs completed in the last hour and day."""
        pools = await self.pool_counters()
        minute = int(time.time() // 60)
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in pools:
                pipe.mget([keys.pool_minute(p["kind"], p["model"], minute - i) for i in range(24 * 60)])
            per_pool = await pipe.execute(raise_on_error=False) if pools else []
        for p, per_minute in zip(pools, per_pool, strict=True):
            counts = [int(c or 0) for c in per_minute] if isinstance(per_minute, list) else []
            p["completed_1h"] = sum(counts[:60])
            p["completed_24h"] = sum(counts)
        return pools

    async def fail_waiting(
        self, model: str, workers: list[str], status: int, message: str, *, in_pools: bool = True
    ) -> int:
        """End the jobs for `model` that no worker was handed yet, in the direct lanes of `workers` (and in its
        pools with `in_pools`), with the error `status` and `message`; how many."""
        pools = map(keys.parse_pool, await self.pools()) if in_pools else iter(())
        streams = [keys.pool(kind, name) for kind, name in pools if name == model]
        for lane in map(text, await self.redis.smembers(keys.DIRECT_LANES)):
            worker, _, name = keys.parse_direct_lane(lane)
            if worker in workers and name == model:
                streams.append(lane)
        end = end_event(status, error_body(status, message, "not_found_error" if status == 404 else None))
        failed = 0
        for stream in streams:
            last = "0-0"
            for group in await self.redis.xinfo_groups(stream) if await self.redis.exists(stream) else []:
                if group["name"] in (keys.GROUP, keys.GROUP.encode()):
                    last = text(group["last-delivered-id"])
            for _, fields in entries(await self.redis.xrange(stream, min=f"({last}", max="+")):
                await self.cancel(text(fields[b"id"]), JobState.FAILED, end)
                failed += 1
        return failed

    async def expire_waiting(self, older_than: Callable[[str], float], *, batch: int = 500) -> int:
        """Expire the jobs of every pool that have waited longer than `older_than(kind)` seconds; how many."""
        expired = 0
        for key in await self.pools():
            kind, model = keys.parse_pool(key)
            cutoff = f"{int((time.time() - older_than(kind)) * 1000)}-{2**63 - 1}"
            expired += await scripts.EXPIRE_WAITING.run(
                self.writer,
                pool=key,
                stats=keys.pool_stats(kind, model),
                cutoff=cutoff,
                now=time.time(),
                ttl=self.record_ttl,
                batch=batch,
                group=keys.GROUP,
                end_event=_EXPIRED,
            )
        return expired
