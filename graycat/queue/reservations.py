"""Reservations of a token's daily quota: what each job in progress may still use of one counted field
(completion_tokens, images), kept as members `<job id>:<amount>` of a sorted set scored by when they lapse."""

from __future__ import annotations

from typing import NamedTuple

from graycat.queue import keys, scripts
from graycat.queue.resp import PipelinedConnection


class Reserved(NamedTuple):
    """RESERVE's answer: `granted` 0 when refused; the day's `used` and the `held` by other reservations."""

    key: str
    granted: int
    used: int
    held: int


async def reserve(
    writer: PipelinedConnection,
    owner: str,
    field: str,
    *,
    day: str,
    limit: int,
    want: int,
    unit: int,
    now: float,
    lifetime: float,
    job_id: str,
) -> Reserved:
    """Reserve up to `want` of the owner's `limit` of `field` today (in multiples of `unit` when it is not 0,
    as much as is left), for `job_id` until `lifetime` seconds from `now` (scripts.RESERVE)."""
    key = keys.reserved(owner, field)
    granted, used, held = await scripts.RESERVE.run(
        writer,
        usage=keys.usage(owner, day),
        reserved=key,
        field=field,
        limit=limit,
        want=want,
        unit=unit,
        now=now,
        lapses=now + lifetime,
        job_id=job_id,
        ttl=int(lifetime),
    )
    return Reserved(key, granted, used, held)


async def release(writer: PipelinedConnection, key: str, member: str) -> None:
    """Give back one reservation (of a job that was not queued)."""
    await writer.call("ZREM", key, member)
