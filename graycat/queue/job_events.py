"""Reading a job's event stream from its start or from an event a client last saw."""

from __future__ import annotations

import redis.asyncio as aioredis

from graycat.queue import keys
from graycat.queue.replies import Entries, streams


async def after(reader: aioredis.Redis, job_id: str, start: str, *, block_ms: int, count: int = 100) -> Entries:
    """Up to `count` of the job's events after the event id `start`, waiting up to `block_ms` for the first
    one (none: nothing came). `reader` is a connection of its own, as the wait holds it."""
    reply = streams(await reader.xread({keys.events(job_id): start}, block=block_ms, count=count))
    return reply[0][1] if reply else []
