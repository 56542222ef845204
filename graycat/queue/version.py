"""The oldest Redis the queue runs on, and the check that refuses older servers.

Redis 7.0 is the floor, because it is the oldest server the tests run on (the system's Redis 7 and the embedded
Valkey 9): Redis 6.2 is outside Redis' support window, and it is where `graycat up` once crashed (XAUTOCLAIM
answered in another shape before 7.0). Every Valkey release (7.2 and later) qualifies.
"""

from __future__ import annotations

import asyncio
import re

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from graycat.queue.connection import connect

MIN_VERSION = (7, 0)
NEEDED = "Redis 7.0 or later, or Valkey"
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class UnsupportedServer(Exception):
    """The Redis server is older than the queue supports; the message names both versions."""


def parse(text: str) -> tuple[int, ...]:
    """'7.0.15' -> (7, 0, 15); (0,) when `text` holds no version."""
    found = _VERSION.search(text)
    return tuple(int(part) for part in found.groups() if part is not None) if found else (0,)


def supported(version: tuple[int, ...]) -> bool:
    return version >= MIN_VERSION


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def server_version(client: aioredis.Redis) -> tuple[str, str] | None:
    """(server name, version) of `client`'s server, e.g. ('valkey', '9.1.2'): from HELLO, which the shipped ACL
    users may run, else from INFO server; None when this user may run neither."""
    try:
        hello = await client.execute_command("HELLO")
    except ResponseError:  # before Redis 6.0, or not allowed to this user
        hello = None
    if hello is not None:
        fields = hello if isinstance(hello, dict) else dict(zip(hello[::2], hello[1::2], strict=True))
        table = {_text(k): v for k, v in fields.items()}
        return _text(table.get("server", "redis")), _text(table.get("version", "0"))
    try:
        info = await client.info("server")
    except ResponseError:
        return None
    name = str(info.get("server_name", "redis"))
    return name, str(info.get(f"{name}_version", info.get("redis_version", "0")))


async def require_supported(client: aioredis.Redis) -> str | None:
    """The server's name and version ('redis 7.0.15'); UnsupportedServer when it is older than MIN_VERSION."""
    found = await server_version(client)
    if found is None:
        return None
    name, version = found
    if not supported(parse(version)):
        raise UnsupportedServer(
            f"the Redis server is {name} {version}; graycat needs {NEEDED} "
            "(or leave REDIS_URL unset: `graycat up` then starts its embedded Valkey)"
        )
    return f"{name} {version}"


def reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether the Redis at `url` (a Sentinel URL's master included) answers within `timeout` s; UnsupportedServer
    when it answers but is too old. For starting processes (it runs its own event loop)."""

    async def check() -> None:
        client = connect(url)
        try:
            async with asyncio.timeout(timeout):
                await require_supported(client)
        finally:
            await client.aclose()

    try:
        asyncio.run(check())
    except (RedisError, OSError):  # TimeoutError included
        return False
    return True
