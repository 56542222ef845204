"""Model pulls through the queue: the api asks (POST /api/pull), a worker that takes pulls downloads the model
onto its own disk, reports its progress in the pull's event stream, and then serves it. A request goes to one
named worker's stream, or to the stream any such worker reads (the first free one takes it); the worker
acknowledges it as it takes it, so each is done once. A request not taken by its deadline is dropped unread.
The same channel carries a named worker's other model operations (DELETE /api/delete, POST /api/copy): each
request has an `action`, and its outcome is the last event of its stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from graycat.queue import keys
from graycat.queue.replies import streams, text

EVENTS_TTL_S = 3600  # a pull's events are kept this long after its latest one
LANE_TTL_S = 60  # a worker's own request stream outlives it by this much (renewed while it reads)
REQUESTS_KEPT = 1000


ACTIONS = ("pull", "delete", "copy")


@dataclass(frozen=True)
class PullRequest:
    id: str
    ref: str  # what to pull; the model to delete or copy
    deadline: float  # unix time: not started past it (the api stopped waiting)
    action: str = "pull"  # one of ACTIONS
    destination: str = ""  # a copy's new name

    def fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "ref": self.ref,
            "deadline": repr(self.deadline),
            "action": self.action,
            "destination": self.destination,
        }

    @classmethod
    def of(cls, fields: dict[bytes, bytes]) -> PullRequest:
        got = {text(k): text(v) for k, v in fields.items()}
        return cls(got["id"], got["ref"], float(got["deadline"]), got.get("action", "pull"), got.get("destination", ""))


async def ask(
    redis: aioredis.Redis,
    ref: str,
    *,
    worker: str | None,
    wait_s: float,
    action: str = "pull",
    destination: str = "",
) -> tuple[PullRequest, str]:
    """Queue `action` on `ref` for `worker` (None: any worker that takes pulls; a pull only), to be started
    within `wait_s` seconds; the request and its entry id (to withdraw it)."""
    request = PullRequest(uuid.uuid4().hex, ref, time.time() + wait_s, action, destination)
    stream = keys.pulls_of(worker) if worker else keys.PULLS_ANY
    entry = await redis.xadd(stream, request.fields(), maxlen=REQUESTS_KEPT, approximate=True)  # type: ignore[arg-type]
    return request, text(entry)


async def withdraw(redis: aioredis.Redis, worker: str | None, entry: str) -> None:
    """Remove a request no worker took (one taken meanwhile is past its deadline: its worker drops it)."""
    await redis.xdel(keys.pulls_of(worker) if worker else keys.PULLS_ANY, entry)


async def follow(
    redis: aioredis.Redis, pull_id: str, block_ms: int = 1000
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """The pull's events as its worker reports them, from the first; None after each `block_ms` without one
    (the caller checks its deadlines). Endless: the caller stops at the last event."""
    stream, last = keys.pull_events(pull_id), "0-0"
    while True:
        reply = streams(await redis.xread({stream: last}, block=block_ms))
        if not reply:
            yield None
            continue
        for entry_id, fields in reply[0][1]:
            last = text(entry_id)
            yield orjson.loads(fields[b"event"])


async def prepare(redis: aioredis.Redis, worker_id: str) -> None:
    """Create (or keep) the consumer groups of the streams a worker takes pulls from, and renew its own."""
    for stream in (keys.pulls_of(worker_id), keys.PULLS_ANY):
        try:
            await redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
    await redis.expire(keys.pulls_of(worker_id), LANE_TTL_S)


async def take(redis: aioredis.Redis, reader: aioredis.Redis, worker_id: str, block_ms: int) -> list[PullRequest]:
    """The next requests for this worker (its own first), acknowledged and removed as they are taken; those
    past their deadline are dropped. Empty after `block_ms` without one."""
    own = keys.pulls_of(worker_id)
    if not await redis.expire(own, LANE_TTL_S):  # gone (first call, or expired while Redis was out of reach)
        await prepare(redis, worker_id)
    try:
        reply = streams(
            await reader.xreadgroup(keys.GROUP, worker_id, {own: ">", keys.PULLS_ANY: ">"}, count=1, block=block_ms)
        )
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        await prepare(redis, worker_id)
        return []
    taken = []
    for stream, entries in reply:
        for entry_id, fields in entries:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.xack(stream, keys.GROUP, entry_id)
                pipe.xdel(stream, entry_id)
                await pipe.execute()
            request = PullRequest.of(fields)
            if request.deadline >= time.time():
                taken.append(request)
    return taken


async def report(redis: aioredis.Redis, pull_id: str, event: dict[str, Any]) -> None:
    """Add one event to the pull's stream (kept EVENTS_TTL_S after the latest)."""
    stream = keys.pull_events(pull_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(stream, {"event": orjson.dumps(event)}, maxlen=10000, approximate=True)
        pipe.expire(stream, EVENTS_TTL_S)
        await pipe.execute()
