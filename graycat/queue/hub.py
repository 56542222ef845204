"""One pub/sub reader per api process that hands each job's events to the request waiting for them.

Workers publish every event of a job on the reply channel of the api process that submitted it, so an api
process needs a single Redis connection for any number of open streams. Each event also lands in the job's
event stream; after a lost connection the hub replays from there what it missed.
"""

from __future__ import annotations

import asyncio
import logging
import random

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from graycat.queue import keys
from graycat.queue.connection import connect
from graycat.queue.replies import entries
from graycat.queue.resp import subscribe

log = logging.getLogger(__name__)


def entry_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


class Subscription:
    """The events of one job, in order."""

    __slots__ = ("job_id", "last_id", "queue")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.last_id = (0, 0)

    async def next(self, timeout: float) -> bytes:
        """The next event (type byte + payload); raises TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            return await self.queue.get()


class EventHub:
    """Multiplexes the reply channel of this api process onto per-job subscriptions."""

    def __init__(self, redis_url: str, instance_id: str) -> None:
        self.channel = keys.reply_channel(instance_id)
        self._url = redis_url
        self._subs: dict[bytes, Subscription] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def open(self, job_id: str) -> Subscription:
        sub = Subscription(job_id)
        self._subs[job_id.encode()] = sub
        return sub

    def close(self, sub: Subscription) -> None:
        self._subs.pop(sub.job_id.encode(), None)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _deliver(self, data: bytes) -> None:
        sub = self._subs.get(data[:32])
        if sub is None:
            return
        space = data.index(b" ", 32)
        entry = entry_key(data[32:space])
        if entry <= sub.last_id:  # already delivered by a replay
            return
        sub.last_id = entry
        sub.queue.put_nowait(data[space + 1 :])

    async def _replay(self, client: aioredis.Redis) -> None:
        """Deliver what open subscriptions missed while the hub was disconnected."""
        for key, sub in list(self._subs.items()):
            start = "({}-{}".format(*sub.last_id)
            for entry_id, fields in entries(await client.xrange(keys.events(sub.job_id), min=start, max="+")):
                self._deliver(key + entry_id + b" " + fields[b"e"])

    async def _run(self) -> None:
        delay = 0.1
        first = True
        client = connect(self._url)  # for replays
        try:
            while True:
                link = None
                try:
                    link = await subscribe(self._url, self.channel, self._deliver)
                    if not first:
                        await self._replay(client)
                    first = False
                    self.connected.set()
                    delay = 0.1
                    await link.closed
                    raise RedisConnectionError("subscription connection closed")
                except (RedisError, OSError) as exc:
                    self.connected.clear()
                    log.warning("event hub lost Redis (%s); reconnecting in %.1fs", exc, delay)
                    await asyncio.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 5.0)
                finally:
                    if link is not None and link.transport is not None:
                        link.transport.close()
        finally:
            await client.aclose()
