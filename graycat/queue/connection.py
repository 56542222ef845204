"""Redis connections tuned for the queue."""

from __future__ import annotations

import socket
from typing import Any

import redis.asyncio as aioredis

from graycat.queue import sentinel

# A Redis host that vanishes (power loss, a cut link, a failover away from a dead machine) sends no reset:
# probe idle connections after 10 s, every 5 s, and give up after 3 unanswered probes or 30 s of unacknowledged
# writes, instead of the system's default two hours.
KEEPALIVE = {socket.TCP_KEEPIDLE: 10, socket.TCP_KEEPINTVL: 5, socket.TCP_KEEPCNT: 3}
USER_TIMEOUT_MS = 30_000


def tune(sock: socket.socket) -> None:
    """Keepalive probes and a write timeout on a raw connection's socket."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in KEEPALIVE.items():
        sock.setsockopt(socket.IPPROTO_TCP, option, value)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)


def connect(
    url: str, *, blocking: bool = False, name: str | None = None, max_connections: int = 512, pool_timeout: float = 5.0
) -> aioredis.Redis:
    """A client for `url` (a Sentinel URL gives a client of the current master). Blocking readers
    (XREADGROUP BLOCK, pub/sub) get no socket timeout: redis-py's default 5 s timeout would break them;
    keepalive probes notice a dead host under them. `name` names its connections (CLIENT LIST shows it).
    At most `max_connections` are open at once; a command that finds them all busy waits up to `pool_timeout`
    seconds for one (redis-py's default pool fails at once past 100, and a burst of one client's polls then
    fails everyone's)."""
    options: dict[str, Any] = {
        "socket_timeout": None if blocking else 10.0,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "socket_keepalive_options": KEEPALIVE,
        "health_check_interval": 0 if blocking else 30,
        "retry_on_timeout": False,
        "max_connections": max_connections,
    }
    if name:
        options["client_name"] = name
    target = sentinel.parse(url)
    if target:
        return target.client(**options)
    pool = aioredis.BlockingConnectionPool.from_url(url, timeout=pool_timeout, **options)
    return aioredis.Redis.from_pool(pool)


def redact(url: str) -> str:
    """`url` with its password hidden, for messages."""
    scheme, sep, rest = url.partition("://")
    auth, at, hosts = rest.rpartition("@")
    if not at or ":" not in auth:
        return url
    return f"{scheme}{sep}{auth.split(':', 1)[0]}:***@{hosts}"
