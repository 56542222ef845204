"""Noticing a dead worker in about a second rather than after VISIBILITY_TIMEOUT.

Every worker stays subscribed to its own presence channel (`keys.alive`). When its process dies, the kernel
closes its sockets and Redis drops the subscription at once. The api's janitor counts the subscribers of the
presence channels of the workers that beat lately (PUBSUB NUMSUB: microseconds per worker, no admin rights,
unlike CLIENT LIST) every WATCH_INTERVAL_S. A worker it saw present and then finds absent ABSENT_CHECKS times in a
row is taken for dead: the queue entries it held are handed back for any live worker to take over at once (with
their delivery counts, before new work) and it leaves the registry. A worker whose subscription only dropped
(a reset connection) subscribes again within milliseconds; should it come back after its jobs were taken over,
its heartbeat tells it to stop running them (scripts.HOLD). A host that vanishes without closing its connections
(power loss, a cut link) keeps its subscription until TCP gives up: VISIBILITY_TIMEOUT remains the fallback.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from graycat.queue import keys, scripts
from graycat.queue.replies import text
from graycat.queue.resp import PipelinedConnection

WATCH_INTERVAL_S = 0.25
ABSENT_CHECKS = 2


class WorkerWatch:
    """Finds dead workers and hands their jobs back; any api replica may run one (the scripts are idempotent)."""

    def __init__(self, redis: aioredis.Redis, writer: PipelinedConnection) -> None:
        self.redis = redis
        self.writer = writer
        self._absent: dict[str, int] = {}  # worker id -> checks in a row it was absent (0: present)
        self._connection = -1

    async def check(self) -> dict[str, int]:
        """Look once; for each worker found dead, how many jobs it held were handed back."""
        reply: Any = await self.writer.call("EVAL", scripts.PRESENCE, 1, keys.WORKERS,
                                            repr(time.time() - keys.WORKER_TTL_S), keys.PREFIX)
        if self.writer.opened != self._connection:
            # A new connection, perhaps to a restarted or promoted Redis that workers have not reached yet: only
            # workers seen present on it count.
            self._connection, self._absent = self.writer.opened, {}
        before, self._absent = self._absent, {}
        dead = []
        for worker_id, subscribers in zip(map(text, reply[::2]), reply[1::2], strict=True):
            if subscribers:
                self._absent[worker_id] = 0
            elif worker_id in before:
                if before[worker_id] + 1 >= ABSENT_CHECKS:
                    dead.append(worker_id)
                else:
                    self._absent[worker_id] = before[worker_id] + 1
        handed = {}
        for worker_id in dead:
            if (n := await self.hand_back(worker_id)) >= 0:
                handed[worker_id] = n
        return handed

    async def hand_back(self, worker_id: str) -> int:
        """Hand back the jobs of a worker whose presence channel has no subscriber; how many (-1: it is present)."""
        beat = await self.redis.get(keys.worker(worker_id))
        info = orjson.loads(beat) if beat else {}
        pools = [keys.pool(kind, model) for kind in info.get("kinds", []) for model in info.get("models", [])]
        return int(await self.writer.call(  # type: ignore[call-overload]
            "EVAL", scripts.ORPHAN, len(pools) + 2, *pools, keys.worker(worker_id), keys.WORKERS,
            keys.GROUP, worker_id, keys.alive(worker_id), keys.TAKEOVER_CHANNEL))
