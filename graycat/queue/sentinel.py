"""Redis Sentinel URLs, for a highly available Redis:
`redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?sentinel_password=...]`
(`rediss+sentinel://` for TLS to the master). The password is the master's; sentinels that require one of
their own take it as `sentinel_password`. Every new connection asks the sentinels for the current master,
so after a failover the processes reconnect to the promoted replica by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError

SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme: TLS to the master
SENTINEL_TIMEOUT_S = 2.0
DEFAULT_PORT = 26379


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False

    def _sentinel(self, **master: Any) -> Sentinel:
        auth = {"password": self.sentinel_password} if self.sentinel_password else {}
        return Sentinel(
            list(self.sentinels),
            sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT_S, **auth},
            socket_connect_timeout=SENTINEL_TIMEOUT_S,
            **master,
        )

    def client(self, **options: Any) -> aioredis.Redis:
        """A redis-py client of the current master; it finds the new master after a failover."""
        master = {"db": self.db, "username": self.username, "password": self.password, "ssl": self.tls}
        return self._sentinel(**master).master_for(self.service, redis_class=aioredis.Redis, **options)

    async def master_url(self) -> str:
        """A plain redis:// (or rediss://) URL of the master the sentinels name now."""
        sentinel = self._sentinel()
        try:
            host, port = await sentinel.discover_master(self.service)
        except Exception as exc:  # MasterNotFoundError, or no sentinel answered
            raise RedisConnectionError(f"no Redis master for '{self.service}' from the sentinels: {exc}") from exc
        finally:
            for client in sentinel.sentinels:
                await client.aclose()
        user = quote(self.username or "", safe="")
        auth = f"{user}:{quote(self.password, safe='')}@" if self.password else ""
        where = f"[{host}]" if ":" in str(host) else host
        return f"{'rediss' if self.tls else 'redis'}://{auth}{where}:{port}/{self.db}"


def parse(url: str) -> SentinelUrl | None:
    """The Sentinel settings of `url`, or None when it is not a Sentinel URL. Raises ValueError if malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        return None
    rest, _, query = rest.partition("?")
    location, _, path = rest.partition("/")
    userinfo, at, hosts = location.rpartition("@")
    if not at:
        userinfo, hosts = "", location
    username, _, password = userinfo.partition(":")
    if username and not password:
        raise ValueError("a username in a Sentinel URL needs its password: user:password@")
    sentinels = [_address(item) for item in filter(None, hosts.split(","))]
    service, _, db = path.strip("/").partition("/")
    if not sentinels or not service:
        raise ValueError(
            "a Sentinel URL needs sentinel addresses and a service name: "
            "redis+sentinel://[:password@]host:26379[,host:26379]/mymaster[/db]"
        )
    if db and not db.isdigit():
        raise ValueError(f"database '{db}' is not a number")
    sentinel_password = (parse_qs(query).get("sentinel_password") or [""])[0]
    return SentinelUrl(
        tuple(sentinels),
        unquote(service),
        int(db or 0),
        unquote(username) or None,
        unquote(password) or None,
        sentinel_password or None,
        SCHEMES[scheme],
    )


def _address(item: str) -> tuple[str, int]:
    """host, host:port, [v6] or [v6]:port as (host, port)."""
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        colon, port = rest[:1], rest[1:]
        if not bracket or (rest and colon != ":"):
            raise ValueError(f"sentinel address '{item}' is not [IPv6]:port")
    elif item.count(":") > 1:
        raise ValueError(f"sentinel address '{item}': write an IPv6 address in brackets, [{item}]")
    else:
        host, colon, port = item.partition(":")
    if not host or (colon and not port.isdigit()):
        raise ValueError(f"sentinel address '{item}' is not host:port")
    return host, int(port) if colon else DEFAULT_PORT


async def resolve(url: str) -> str:
    """`url` itself, or for a Sentinel URL the plain URL of the current master."""
    target = parse(url)
    return url if target is None else await target.master_url()
