"""A minimal pipelined Redis connection for the per-token path of a worker.

redis-py spends a few hundred microseconds of CPU per command, and a worker sends one command per token; on
a machine where the engine needs every core, that CPU is taken from generation. This connection writes
each command at once and never waits for its reply unless asked to: replies are matched to commands in
order as they arrive. All events of a job go through the same connection, so Redis applies them in order.
It speaks RESP2 and understands only the replies the queue's scripts give (integers, nil, errors, OK).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque

from redis.connection import parse_url

log = logging.getLogger(__name__)


class RespError(Exception):
    """Redis answered a command with an error."""


def encode(args: tuple[bytes | str | int, ...]) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[object] | None] = deque()
        self.buffer = b""
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n")) >= 0:
            line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
            kind, rest = line[:1], line[1:]
            reply: object
            if kind == b":":
                reply = int(rest)
            elif kind == b"-":
                reply = RespError(rest.decode(errors="replace"))
            elif kind in (b"+", b"$"):  # OK, or a nil bulk string ($-1): the only ones our commands give
                reply = None if rest == b"-1" else rest
            else:
                reply = RespError(f"unexpected reply {line[:40]!r}")
            future = self.waiting.popleft() if self.waiting else None
            if future is None:
                if isinstance(reply, RespError):
                    log.error("Redis refused an event write: %s", reply)
            elif not future.done():
                if isinstance(reply, RespError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = ConnectionError(f"connection to Redis lost: {exc or 'closed'}")
        while self.waiting:
            future = self.waiting.popleft()
            if future is not None and not future.done():
                future.set_exception(self.lost)


class PipelinedConnection:
    """Send commands in order; await a reply only where it matters. Reconnects on the next call after a loss."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._proto: _Protocol | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> _Protocol:
        opts = parse_url(self.url)
        loop = asyncio.get_running_loop()
        if "path" in opts:
            _, proto = await loop.create_unix_connection(_Protocol, opts["path"])
        else:
            tls = ssl.create_default_context() if self.url.startswith("rediss://") else None
            _, proto = await loop.create_connection(_Protocol, opts.get("host", "localhost"),
                                                    opts.get("port", 6379), ssl=tls)
        setup: list[tuple[bytes | str | int, ...]] = []
        if opts.get("password"):
            setup.append(("AUTH", opts.get("username") or "default", opts["password"]))
        if opts.get("db"):
            setup.append(("SELECT", opts["db"]))
        for cmd in setup:
            future: asyncio.Future[object] = loop.create_future()
            proto.waiting.append(future)
            assert proto.transport is not None
            proto.transport.write(encode(cmd))
            await future
        return proto

    async def ready(self) -> _Protocol:
        """The live connection, connecting (again) when needed."""
        proto = self._proto
        if proto is None or proto.lost is not None:
            async with self._lock:
                if self._proto is None or self._proto.lost is not None:
                    self._proto = await self._connect()
                proto = self._proto
        return proto

    def send(self, *args: bytes | str | int) -> None:
        """Write a command without waiting for its reply (errors are logged). Needs a live connection."""
        proto = self._proto
        if proto is None or proto.lost is not None or proto.transport is None:
            raise ConnectionError("no live connection to Redis")
        proto.waiting.append(None)
        proto.transport.write(encode(args))

    async def call(self, *args: bytes | str | int) -> object:
        """Write a command after every earlier one and return its reply."""
        proto = await self.ready()
        assert proto.transport is not None
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        proto.waiting.append(future)
        proto.transport.write(encode(args))
        return await future

    async def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
