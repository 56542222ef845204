"""The worker side of the queue: claim jobs, report their events, finish them, heartbeat."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from graycat.jobs import Job, JobState, Usage, end_event, error_body
from graycat.queue import keys, scripts
from graycat.queue.replies import entries as entries_reply
from graycat.queue.resp import PipelinedConnection

log = logging.getLogger(__name__)

NO_USAGE = Usage()


@dataclass(slots=True)
class Claimed:
    """A job this worker holds: it must finish it (ack) or leave it for another worker to reclaim."""

    job: Job
    pool: str
    entry_id: str


class Consumer:
    """One worker's connection to its pools."""

    def __init__(
        self,
        redis: aioredis.Redis,
        reader: aioredis.Redis,
        events: PipelinedConnection,
        worker_id: str,
        pools: Iterable[tuple[str, str]],
        *,
        record_ttl: int,
    ) -> None:
        self.redis = redis
        self.reader = reader  # pub/sub
        self.events = events
        # XREADGROUP BLOCK on a connection of its own (it would hold up the events' writes), parsed by resp.py:
        # redis-py's reply parsing was the largest part of a worker's CPU per job.
        self.claims = PipelinedConnection(events.url, name=events.name)
        self.worker_id = worker_id
        self.pools: list[tuple[str, str, str]] = []
        self.lanes: list[str] = []
        self.set_pools(pools)
        self.kinds = sorted({kind for kind, _, _ in self.pools})
        self.record_ttl = record_ttl

    def set_pools(self, pools: Iterable[tuple[str, str]]) -> None:
        """Claim from these (kind, model) pools from now on (after `setup`, for new ones)."""
        self.pools = [(kind, model, keys.pool(kind, model)) for kind, model in pools]
        self.lanes = [keys.direct_lane(self.worker_id, kind, model) for kind, model, _ in self.pools]
        streams = [*self.lanes, *(stream for _, _, stream in self.pools)]
        self._claim_streams = ("STREAMS", *streams, *(">" for _ in streams))

    async def setup(self) -> None:
        """Create the consumer group of each pool and direct lane; from id 0, so jobs enqueued before any worker
        are served."""
        for stream in [*self.lanes, *(stream for _, _, stream in self.pools)]:
            try:
                await self.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def claim(self, count: int, block_ms: int) -> list[Claimed]:
        """Up to `count` new jobs from this worker's direct lanes, then its pools, waiting at most `block_ms`.
        A claim cancelled before its reply (a stop request, a dead link) drops the connection, as redis-py did:
        the next one starts afresh, and jobs the lost reply held are taken over once this worker is gone."""
        try:
            reply = await self.claims.call(
                "XREADGROUP",
                "GROUP",
                keys.GROUP,
                self.worker_id,
                "COUNT",
                count,
                "BLOCK",
                block_ms,
                *self._claim_streams,
            )
        except asyncio.CancelledError:
            self.claims.drop()
            raise
        except ResponseError as exc:
            await self._recreate_lost_streams(exc)
            return []
        claimed = []
        for stream, entries in cast(list[tuple[bytes, list[tuple[bytes, list[bytes] | None]]]], reply or []):
            pool = stream.decode()
            for entry_id, flat in entries:
                if flat:
                    fields = dict(zip(flat[::2], flat[1::2], strict=True))
                    claimed.append(Claimed(Job.from_fields(fields), pool, entry_id.decode()))
        return claimed

    async def _recreate_lost_streams(self, exc: ResponseError) -> None:
        """After Redis said a stream or its group is gone (`NOGROUP`; `UNBLOCKED` for a claim waiting on it),
        recreate this worker's streams; any other refusal is raised. They go when the janitor moves a direct
        lane to its pool after a missed heartbeat, or when Redis lost its data."""
        if not str(exc).startswith(("NOGROUP", "UNBLOCKED")):
            raise exc
        log.warning("a stream this worker claims from is gone (%s); recreating its streams", exc)
        await self.setup()

    async def release(self, claimed: Claimed) -> None:
        """Give back a job this worker will not run: it goes to the end of its pool for another worker."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(claimed.pool, claimed.job.to_fields())  # type: ignore[arg-type]
            pipe.xack(claimed.pool, keys.GROUP, claimed.entry_id)
            pipe.xdel(claimed.pool, claimed.entry_id)
            await pipe.execute()

    async def start(self, job: Job) -> bool:
        """Mark the job active and tell its client; False when it was cancelled while waiting."""
        started = await scripts.START.run(
            self.events,
            job=keys.job(job.id),
            events=keys.events(job.id),
            cancel_flag=keys.cancel_flag(job.id),
            channel=job.reply_to,
            job_id=job.id,
            worker=self.worker_id,
            now=time.time(),
            ttl=self.record_ttl,
        )
        return started is scripts.Started.STARTED

    def emit(self, job: Job, events: list[bytes]) -> None:
        """Append events to the job's stream and publish them to its client, without waiting: they reach Redis
        in order, before anything sent later on the same connection (such as the job's end)."""
        scripts.EMIT.send(
            self.events,
            events=keys.events(job.id),
            job=keys.job(job.id),
            channel=job.reply_to,
            job_id=job.id,
            worker=self.worker_id,
            payloads=events,
        )

    async def finish(
        self, claimed: Claimed, status: int, body: bytes, state: JobState, *, ran: bool = True, usage: Usage = NO_USAGE
    ) -> None:
        """Record the job's end, send the final event, count its usage for the token that sent it and
        acknowledge its queue entry, atomically. A job that another worker has taken over meanwhile is left to it."""
        job = claimed.job
        now = time.time()
        await scripts.FINISH.run(
            self.events,
            job=keys.job(job.id),
            events=keys.events(job.id),
            pool=claimed.pool,
            stats=keys.pool_stats(job.kind, job.model),
            minute=keys.pool_minute(job.kind, job.model, int(now // 60)),
            channel=job.reply_to,
            job_id=job.id,
            end_event=end_event(status, body),
            state=state.value,
            entry=claimed.entry_id,
            group=keys.GROUP,
            now=now,
            ttl=self.record_ttl,
            status=status,
            runner=self.worker_id if ran else "",
            day=time.strftime("%Y-%m-%d", time.gmtime(now)),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            images=usage.images,
        )

    async def reclaim(self, count: int, idle_ms: int) -> list[tuple[Claimed, int]]:
        """Take over up to `count` jobs, oldest first, whose worker stopped heartbeating for `idle_ms` or was
        found dead (graycat/queue/presence.py), with how many times each has now been delivered."""
        taken: list[tuple[Claimed, int]] = []
        for _, _, stream in self.pools:
            if len(taken) >= count:
                break
            try:
                idle = await self.redis.xpending_range(stream, keys.GROUP, "-", "+", count - len(taken), idle=idle_ms)
            except ResponseError as exc:
                await self._recreate_lost_streams(exc)
                return taken
            if not idle:
                continue
            delivered = {cast(bytes, p["message_id"]): int(p["times_delivered"]) for p in idle}
            # Only entries still idle are claimed: of workers reclaiming at once, one gets each.
            won = await self.redis.xclaim(stream, keys.GROUP, self.worker_id, idle_ms, list(delivered))
            for entry_id, fields in entries_reply(won):
                if not fields:  # deleted meanwhile
                    continue
                job = Job.from_fields(fields)
                await self.redis.hincrby(keys.pool_stats(job.kind, job.model), "redelivered", 1)
                taken.append((Claimed(job, stream, entry_id.decode()), delivered[entry_id] + 1))
        return taken

    async def dead_letter(self, claimed: Claimed, deliveries: int) -> None:
        """Fail a job that was delivered too many times and keep it in the dead-letter stream."""
        reason = (
            f"job failed: the worker running it stopped during each of its {deliveries - 1} runs "
            "(MAX_DELIVERIES); it is kept in the dead-letter registry"
        )
        await self.keep_dead(claimed, deliveries, reason)
        body = error_body(500, reason)
        await self.finish(claimed, 500, body, JobState.FAILED, ran=False)

    async def keep_dead(self, claimed: Claimed, deliveries: int, reason: str) -> None:
        """Add a job that will not run again to the dead-letter stream, with why (the caller finishes it)."""
        job = claimed.job
        fields: dict[Any, Any] = {
            **job.to_fields(),
            "pool": claimed.pool,
            "deliveries": deliveries,
            "reason": reason,
            "at": repr(time.time()),
        }
        await self.redis.xadd(keys.DEAD, fields, maxlen=10000, approximate=True)
        await self.redis.hincrby(keys.pool_stats(job.kind, job.model), "dead_lettered", 1)

    async def heartbeat(
        self,
        info: dict[str, Any],
        ttl: float,
        held: list[Claimed],
        models: dict[str, dict[str, Any]],
        *,
        loading: bool = False,
    ) -> list[Claimed]:
        """Publish the worker's state and models (the api validates requests against them), and keep its
        running entries from looking abandoned; returns those another worker took over meanwhile. While
        `loading`, a model's info is only added where none is known: a ready worker's full info is never
        replaced by a loading one's."""
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.WORKERS, {self.worker_id: now})
            pipe.set(keys.worker(self.worker_id), orjson.dumps(info), ex=max(1, int(ttl)))
            if self.lanes:
                pipe.sadd(keys.DIRECT_LANES, *self.lanes)  # after the record: a lane is rescued only once it expires
            if loading:
                for name, m in models.items():
                    pipe.hsetnx(keys.MODELS, name, orjson.dumps(m))
            elif models:
                pipe.hset(keys.MODELS, mapping={name: orjson.dumps(m) for name, m in models.items()})
            if held:
                scripts.HOLD.queue(
                    pipe,
                    pools=[c.pool for c in held],
                    group=keys.GROUP,
                    worker=self.worker_id,
                    entries=[c.entry_id for c in held],
                )
            replies = await pipe.execute()
        return [held[i - 1] for i in scripts.HOLD.reply(replies[-1])] if held else []

    async def close(self) -> None:
        """Close the claims' connection (the others are the caller's)."""
        await self.claims.close()

    async def leave(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.WORKERS, self.worker_id)
            pipe.delete(keys.worker(self.worker_id))
            await pipe.execute()

    async def takeovers(self, present: asyncio.Event | None = None) -> AsyncIterator[str]:
        """Stay subscribed to this worker's presence channel (the api takes a worker without a subscriber for
        dead) and yield the ids of dead workers whose jobs are handed back for live workers to take over.
        `present` is set while Redis confirms the subscription."""
        async for message in self._messages(keys.alive(self.worker_id), keys.TAKEOVER_CHANNEL, confirmed=present):
            yield message

    async def cancellations(self) -> AsyncIterator[str]:
        """Job ids whose cancellation is requested, as they are published."""
        async for message in self._messages(keys.CANCEL_CHANNEL):
            yield message

    async def skips(self) -> AsyncIterator[str]:
        """Ids of jobs whose current image (iteration) to skip."""
        async for message in self._messages(keys.SKIP_CHANNEL):
            yield message

    async def refreshes(self) -> AsyncIterator[str]:
        """Ids of requests to read the models folder again, addressed to this worker's kinds."""
        async for message in self._messages(*(keys.refresh_channel(kind) for kind in self.kinds)):
            yield message

    async def _messages(self, *channels: str, confirmed: asyncio.Event | None = None) -> AsyncIterator[str]:
        """The messages of `channels`; `confirmed` is set once Redis confirmed every subscription, cleared when
        the connection ends."""
        pubsub = self.reader.pubsub()
        await pubsub.subscribe(*channels)
        waiting = len(channels)
        try:
            while True:
                msg = await pubsub.get_message(timeout=None)
                if msg is None:
                    continue
                if msg["type"] == "subscribe":
                    waiting -= 1
                    if waiting == 0 and confirmed is not None:
                        confirmed.set()
                elif msg["type"] == "message":
                    yield msg["data"].decode()
        finally:
            if confirmed is not None:
                confirmed.clear()
            await pubsub.aclose()
