"""Having the live workers of a kind read their models folder again, and waiting until each has: A1111's
refresh-* routes and `graycat pull --sd` both ask this way."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from graycat.queue import keys
from graycat.queue.replies import text

REPEAT_S = 2.0  # a worker that was not yet listening hears the request the next time


@dataclass(frozen=True)
class Refreshed:
    asked: list[str]  # the workers live when asked
    late: list[str]  # still reading when the wait ended
    failed: list[str]  # "<worker>: <why>" of each whose rescan failed (it keeps the models it had)


async def live_workers(redis: aioredis.Redis) -> list[dict[str, Any]]:
    """Heartbeats of the workers seen in the last WORKER_TTL_S seconds."""
    ids = await redis.zrangebyscore(keys.WORKERS, time.time() - keys.WORKER_TTL_S, "+inf")
    if not ids:
        return []
    beats = await redis.mget([keys.worker(text(i)) for i in cast(list[bytes], ids)])
    return [orjson.loads(b) for b in beats if b]


async def refresh(redis: aioredis.Redis, kind: str, timeout: float) -> Refreshed:
    """Ask every live worker of `kind` to rescan, and wait up to `timeout` seconds until each has announced what
    it found (in its heartbeat) or has stopped."""
    asked = sorted(w["id"] for w in await live_workers(redis) if w.get("kind") == kind)
    request_id = uuid.uuid4().hex
    started = time.monotonic()
    sent = -REPEAT_S
    while True:
        live = {w["id"]: w for w in await live_workers(redis) if w.get("kind") == kind}
        waiting = [i for i in asked if i in live and request_id not in live[i].get("refreshed", [])]
        elapsed = time.monotonic() - started
        if not waiting or elapsed > timeout:
            break
        if elapsed - sent >= REPEAT_S:
            await redis.publish(keys.refresh_channel(kind), request_id)
            sent = elapsed
        await asyncio.sleep(0.05)
    failed = [
        f"{worker}: {why}"
        for worker in asked
        if worker in live
        for rid, _, why in (e.partition(" ") for e in live[worker].get("refresh_failures", []))
        if rid == request_id
    ]
    return Refreshed(asked, waiting, failed)
