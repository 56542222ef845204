"""Minimal Redis connections for the per-token path: a pipelined command writer and a pub/sub reader.

redis-py spends a few hundred microseconds of CPU per command and per message, and a streamed completion
costs one command in the worker and one message in the api per token; on a machine where the engine needs
every core, that CPU is taken from generation. These connections speak RESP2 over an asyncio protocol:
the commands issued in one turn of the event loop leave in one write (one system call for the requests
of many clients) and their replies are matched in order as they arrive, so a caller waits only for the replies
it needs; pub/sub messages are handed over as raw bytes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable

from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from graycat.queue.connection import tune
from graycat.queue.sentinel import resolve

log = logging.getLogger(__name__)

Arg = bytes | str | int
_INCOMPLETE = object()
_SIMPLE, _ERROR, _INTEGER, _BULK, _ARRAY = b"+-:$*"  # RESP2's type bytes


_LENGTHS = [b"$%d\r\n" % n for n in range(1024)]  # the length line of short arguments, made once


def encode(args: tuple[Arg, ...]) -> bytes:
    """One command in RESP (an api's ENQUEUE has about 50 arguments: 9 us, a fifth less than formatting
    each argument's length line)."""
    parts = [b"*%d\r\n" % len(args)]
    add = parts.append
    for arg in args:
        if type(arg) is bytes:
            data = arg
        elif type(arg) is str:
            data = arg.encode()
        else:
            data = str(arg).encode()
        size = len(data)
        add(_LENGTHS[size] if size < 1024 else b"$%d\r\n" % size)
        add(data)
        add(b"\r\n")
    return b"".join(parts)


# Refusals that mean the server cannot take commands for now (loading its data after a restart, a master demoted
# by a failover, a replica whose master is down): connection errors, as redis-py makes them, so that callers back
# off and reconnect instead of failing for good.
_UNAVAILABLE = ("LOADING", "READONLY", "MASTERDOWN")


def _error(text: str) -> RedisError:
    return RedisConnectionError(text) if text.startswith(_UNAVAILABLE) else ResponseError(text)


def parse(buf: bytes, pos: int) -> tuple[object, int]:
    """One RESP2 value from `buf` at `pos`: (value, next position), or (_INCOMPLETE, pos) when more is needed.
    Errors are returned as exception instances (`_error`). An array's bulk strings (a claim's job fields: most of
    what a worker reads) are read in its loop, without a call each."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, pos
    kind = buf[pos]
    if kind == _BULK:
        size = int(buf[pos + 1 : end])
        if size < 0:
            return None, end + 2
        stop = end + 2 + size
        if len(buf) < stop + 2:
            return _INCOMPLETE, pos
        return buf[end + 2 : stop], stop + 2
    if kind == _ARRAY:
        count = int(buf[pos + 1 : end])
        if count < 0:
            return None, end + 2
        items: list[object] = []
        at, length = end + 2, len(buf)
        for _ in range(count):
            if at < length and buf[at] == _BULK:
                eol = buf.find(b"\r\n", at)
                if eol < 0:
                    return _INCOMPLETE, pos
                size = int(buf[at + 1 : eol])
                if size < 0:
                    items.append(None)
                    at = eol + 2
                    continue
                stop = eol + 2 + size
                if length < stop + 2:
                    return _INCOMPLETE, pos
                items.append(buf[eol + 2 : stop])
                at = stop + 2
                continue
            item, at = parse(buf, at)
            if item is _INCOMPLETE:
                return _INCOMPLETE, pos
            items.append(item)
        return items, at
    line = buf[pos + 1 : end]
    if kind == _SIMPLE:
        return line, end + 2
    if kind == _ERROR:
        return _error(line.decode(errors="replace")), end + 2
    if kind == _INTEGER:
        return int(line), end + 2
    raise RedisConnectionError(f"unexpected RESP data {buf[pos : pos + 40]!r}")


class RespProtocol(asyncio.Protocol):
    """Parses replies as they arrive and hands each to `on_value`."""

    def __init__(self, on_value: Callable[[object], None]) -> None:
        self.on_value = on_value
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[object] | None] = deque()
        self.buffer = b""
        self.unsent: list[bytes] = []  # commands of this turn of the loop, written together by flush()
        self.lost: Exception | None = None
        self.loop = asyncio.get_running_loop()
        self.closed = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        pos = 0
        while pos < len(buf):
            value, pos = parse(buf, pos)
            if value is _INCOMPLETE:
                break
            self.on_value(value)
        self.buffer = buf[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}")
        while self.waiting:
            future = self.waiting.popleft()
            if future is not None and not future.done():
                future.set_exception(self.lost)
        if not self.closed.done():
            self.closed.set_result(None)

    def write(self, args: tuple[Arg, ...], future: asyncio.Future[object] | None) -> None:
        """Queue a command; it leaves with the others of this turn of the loop, in order."""
        assert self.transport is not None
        self.waiting.append(future)
        if not self.unsent:
            self.loop.call_soon(self.flush)
        self.unsent.append(encode(args))

    def flush(self) -> None:
        """Write the queued commands now."""
        if self.unsent and self.transport is not None and self.lost is None:
            self.transport.write(b"".join(self.unsent))
        self.unsent.clear()


async def _open(
    url: str, on_value: Callable[[RespProtocol, object], None], name: str | None = None, preload: tuple[str, ...] = ()
) -> RespProtocol:
    """Connect, authenticate, name the connection, select the database of `url` (for a Sentinel URL: of the
    current master) and load the Lua scripts of `preload` into Redis's script cache, in one round trip."""
    url = await resolve(url)
    opts = parse_url(url)
    loop = asyncio.get_running_loop()
    proto: RespProtocol | None = None

    def factory() -> RespProtocol:
        nonlocal proto
        proto = RespProtocol(lambda value: on_value(proto, value))  # type: ignore[arg-type]
        return proto

    try:
        if "path" in opts:
            await loop.create_unix_connection(factory, opts["path"])
        else:
            tls = ssl.create_default_context() if url.startswith("rediss://") else None
            await asyncio.wait_for(
                loop.create_connection(factory, opts.get("host", "localhost"), opts.get("port", 6379), ssl=tls), 5
            )
    except (OSError, TimeoutError) as exc:
        raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
    assert proto is not None and proto.transport is not None
    if (sock := proto.transport.get_extra_info("socket")) is not None and sock.family != socket.AF_UNIX:
        tune(sock)
    setup: list[tuple[Arg, ...]] = []
    if opts.get("password"):
        setup.append(("AUTH", opts.get("username") or "default", opts["password"]))
    if name:
        setup.append(("CLIENT", "SETNAME", name))
    if opts.get("db"):
        setup.append(("SELECT", opts["db"]))
    futures: list[asyncio.Future[object]] = []
    for cmd in [*setup, *(("SCRIPT", "LOAD", source) for source in preload)]:
        futures.append(loop.create_future())
        proto.write(cmd, futures[-1])
    await asyncio.gather(*futures[: len(setup)])
    for loaded in await asyncio.gather(*futures[len(setup) :], return_exceptions=True):
        if isinstance(loaded, Exception):  # EVALSHA falls back to EVAL
            log.warning("could not load a Lua script into Redis: %s", loaded)
    return proto


def _reply(proto: RespProtocol, value: object) -> None:
    future = proto.waiting.popleft() if proto.waiting else None
    if isinstance(value, RedisError) and str(value).startswith("READONLY") and proto.transport is not None:
        proto.transport.close()  # a master demoted by a failover: the next call connects to the new one
    if future is None:
        if isinstance(value, RedisError):
            log.error("Redis refused a write: %s", value)
    elif not future.done():
        if isinstance(value, RedisError):
            future.set_exception(value)
        else:
            future.set_result(value)


class PipelinedConnection:
    """Send commands in order; await a reply only where it matters. Reconnects on the next call after a loss.
    Each connection it opens loads the scripts of `preload` (Lua sources), so that EVALSHA finds them in a Redis
    that restarted or failed over."""

    def __init__(self, url: str, name: str | None = None, preload: tuple[str, ...] = ()) -> None:
        self.url = url
        self.name = name
        self.preload = preload
        self._proto: RespProtocol | None = None
        self._lock = asyncio.Lock()
        self.opened = 0  # connections opened so far: a new one may reach a restarted or failed-over Redis

    async def _ready(self) -> RespProtocol:
        proto = self._proto
        if proto is None or proto.lost is not None:
            async with self._lock:
                if self._proto is None or self._proto.lost is not None:
                    self._proto = await _open(self.url, _reply, self.name, self.preload)
                    self.opened += 1
                proto = self._proto
        return proto

    def send(self, *args: Arg) -> None:
        """Write a command without waiting for its reply (errors are logged). Needs a live connection."""
        proto = self._proto
        if proto is None or proto.lost is not None:
            raise RedisConnectionError("no live connection to Redis")
        proto.write(args, None)

    async def call(self, *args: Arg) -> object:
        """Write a command after every earlier one and return its reply."""
        proto = await self._ready()
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        proto.write(args, future)
        return await future

    def drop(self) -> None:
        """Close the connection now, without sending what waits: the next call opens a new one."""
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.abort()
        self._proto = None

    async def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.flush()  # what was sent goes out before the connection closes
            self._proto.transport.close()


async def subscribe(url: str, channel: str, on_message: Callable[[bytes], None]) -> RespProtocol:
    """Subscribe to `channel`, handing each message's payload to `on_message`. Returns once the subscription
    is in place; the connection's `closed` future completes when it is lost."""
    confirmed = asyncio.get_running_loop().create_future()

    def on_value(proto: RespProtocol, value: object) -> None:
        if isinstance(value, list) and value:
            if value[0] == b"message":
                on_message(value[2])
            elif value[0] == b"subscribe" and not confirmed.done():
                confirmed.set_result(None)
        else:
            _reply(proto, value)  # AUTH / SELECT

    proto = await _open(url, on_value)
    proto.write(("SUBSCRIBE", channel), None)
    await asyncio.wait([confirmed, proto.closed], return_when=asyncio.FIRST_COMPLETED)
    if not confirmed.done():
        raise RedisConnectionError("connection lost while subscribing")
    return proto
