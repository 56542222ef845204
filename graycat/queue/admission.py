"""A request's admission in Redis, shared by every api replica: its token's record (managed tokens), the
requests of the last minute, its place in flight (scripts.ADMIT); and at its end the place freed and the
request counted in the token's usage of the day."""

from __future__ import annotations

from graycat.queue import keys, scripts
from graycat.queue.resp import PipelinedConnection


async def admit(
    writer: PipelinedConnection,
    hashed: str,
    owner: str,
    *,
    managed: bool,
    rpm: int,
    concurrency: int,
    now: float,
    ticket: str,
    oldest: float,
    ttl: int,
    counted: bool,
) -> scripts.Admitted:
    """Admit a request of the token hashed `hashed` (owner `owner`) as `ticket` (scripts.ADMIT)."""
    return await scripts.ADMIT.run(
        writer,
        token=keys.token(hashed),
        recent=keys.recent_requests(owner),
        in_flight=keys.in_flight(owner),
        managed=1 if managed else 0,
        rpm=rpm,
        concurrency=concurrency,
        now=now,
        ticket=ticket,
        oldest=oldest,
        ttl=ttl,
        counted=1 if counted else 0,
    )


def finish(
    writer: PipelinedConnection, owner: str, ticket: str, day: str, *, held: bool, failed: bool, keep_s: int
) -> None:
    """Free the place in flight of a request (when it `held` one) and count it, and whether it `failed`, in
    the owner's usage of `day`, kept `keep_s` seconds; sent without waiting for the replies."""
    usage = keys.usage(owner, day)
    if held:
        writer.send("ZREM", keys.in_flight(owner), ticket)
    writer.send("HINCRBY", usage, "requests", 1)
    if failed:
        writer.send("HINCRBY", usage, "errors", 1)
    writer.send("EXPIRE", usage, keep_s)
