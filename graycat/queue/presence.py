"""Noticing a dead worker in about a second rather than after VISIBILITY_TIMEOUT.

Every worker stays subscribed to its own presence channel (`keys.alive`). When its process dies, the kernel
closes its sockets and Redis drops the subscription at once. The api's janitor counts the subscribers of the
presence channels of the workers that beat lately (PUBSUB NUMSUB: microseconds per worker, no admin rights,
unlike CLIENT LIST) every WATCH_INTERVAL_S. A worker found absent ABSENT_CHECKS times in a row is taken for dead:
the queue entries it held are handed back for any live worker to take over at once (with their delivery counts,
before new work) and it leaves the registry. Workers subscribe before they first register and say so in their
heartbeat record (`present`), so one killed a moment after it started is found too, though the api never saw
it present. A worker the api never saw present on its current connection is judged by that record, and only by
one written since that connection opened: after a restarted or promoted Redis, workers that have not reached it
yet are not taken for dead. Workers of releases without presence never are (their jobs wait for
VISIBILITY_TIMEOUT). A worker whose subscription only dropped
(a reset connection) subscribes again within milliseconds; should it come back after its jobs were taken over,
its heartbeat tells it to stop running them (scripts.HOLD). A host that vanishes without closing its connections
(power loss, a cut link) keeps its subscription until TCP gives up: VISIBILITY_TIMEOUT remains the fallback.
"""

from __future__ import annotations

import time

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
        self._absent: dict[str, int] = {}  # worker id -> checks in a row it was absent
        self._seen: set[str] = set()  # seen present on the current connection
        self._connection, self._since = -1, 0.0  # the current connection, when it opened (unix time)

    async def check(self) -> dict[str, int]:
        """Look once; for each worker found dead, how many jobs it held were handed back."""
        reply = await scripts.PRESENCE.run(self.writer, workers=keys.WORKERS, oldest=time.time() - keys.WORKER_TTL_S)
        if self.writer.opened != self._connection:
            self._connection, self._since, self._absent, self._seen = self.writer.opened, time.time(), {}, set()
        before, self._absent = self._absent, {}
        listed, dead = set(), []
        for worker_id, subscribers in zip(map(text, reply[::2]), reply[1::2], strict=True):
            listed.add(worker_id)
            if subscribers:
                self._seen.add(worker_id)
            elif (absent := before.get(worker_id, 0) + 1) >= ABSENT_CHECKS:
                dead.append(worker_id)
            else:
                self._absent[worker_id] = absent
        self._seen &= listed
        handed = {}
        for worker_id in dead:
            if (n := await self.hand_back(worker_id, proven=worker_id in self._seen)) >= 0:
                handed[worker_id] = n
        return handed

    async def hand_back(self, worker_id: str, *, proven: bool = True) -> int:
        """Hand back the jobs of a worker whose presence channel has no subscriber; how many, or -1 where it is
        present after all or, not `proven` (never seen present on this connection), where its record does not
        say that it was subscribed when it last beat, since this connection opened."""
        beat = await self.redis.get(keys.worker(worker_id))
        info = orjson.loads(beat) if beat else {}
        if not proven and not (info.get("present") and info.get("heartbeat", 0) >= self._since):
            return -1
        pools = [keys.pool(kind, model) for kind in info.get("kinds", []) for model in info.get("models", [])]
        return await scripts.ORPHAN.run(
            self.writer,
            pools=pools,
            heartbeat=keys.worker(worker_id),
            workers=keys.WORKERS,
            group=keys.GROUP,
            worker=worker_id,
            alive=keys.alive(worker_id),
            takeover=keys.TAKEOVER_CHANNEL,
        )
