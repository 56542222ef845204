"""Redis connections tuned for the queue."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from graycat.queue import sentinel


def connect(url: str, *, blocking: bool = False) -> aioredis.Redis:
    """A client for `url` (a Sentinel URL gives a client of the current master). Blocking readers
    (XREADGROUP BLOCK, pub/sub) get no socket timeout: redis-py's default 5 s timeout would break them."""
    options: dict[str, Any] = {
        "socket_timeout": None if blocking else 10.0,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
        "health_check_interval": 0 if blocking else 30,
        "retry_on_timeout": False,
    }
    target = sentinel.parse(url)
    return target.client(**options) if target else aioredis.Redis.from_url(url, **options)
