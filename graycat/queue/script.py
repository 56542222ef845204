"""A Lua script with named KEYS and ARGV and a typed reply, run by EVALSHA.

`Script.run(conn, job=..., events=..., status=...)` lays the keyword arguments out in the declared order (a
name declared with a leading `*` takes a sequence, spliced in place; an optional key is an empty one), sends
EVALSHA and, when Redis answers NOSCRIPT (restarted, failed over, or its script cache flushed), EVAL with the
source, which caches it again. The retry is safe only because the caller waits for the reply: a script that
rides along without its own wait (`send` on a PipelinedConnection, `queue` in a redis-py pipeline) is sent as
EVAL, so a NOSCRIPT can never be answered after the commands that followed it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, ResponseError

from graycat.queue.resp import Arg, PipelinedConnection

R = TypeVar("R")
Value = Arg | float | Sequence[Arg]


@dataclass(frozen=True)
class Script(Generic[R]):
    """`source` reads KEYS and ARGV in the order of `keys` and `args`; `reply` turns Redis's answer into R."""

    source: str
    keys: tuple[str, ...]
    args: tuple[str, ...]
    reply: Callable[[Any], R]
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    def layout(self, values: dict[str, Value]) -> tuple[int, list[Arg]]:
        """numkeys, then the keys and the arguments, as EVAL and EVALSHA take them after the script."""
        if (unknown := values.keys() - {n.lstrip("*") for n in self.keys + self.args}):
            raise TypeError(f"unknown script argument(s): {', '.join(sorted(unknown))}")
        keys = self._flat(self.keys, values)
        return len(keys), keys + self._flat(self.args, values)

    @staticmethod
    def _flat(names: tuple[str, ...], values: dict[str, Value]) -> list[Arg]:
        out: list[Arg] = []
        for name in names:
            value = values[name.lstrip("*")]
            if isinstance(value, list | tuple) and name.startswith("*"):
                out.extend(value)
            elif isinstance(value, float) and not name.startswith("*"):
                out.append(repr(value))
            elif isinstance(value, bytes | str | int) and not name.startswith("*"):
                out.append(value)
            else:
                raise TypeError(f"script argument {name.lstrip('*')}: {type(value).__name__}")
        return out

    async def run(self, conn: PipelinedConnection | aioredis.Redis, **values: Value) -> R:
        """Run it and wait for its reply (after every command sent earlier on a PipelinedConnection)."""
        numkeys, laid = self.layout(values)
        try:
            if isinstance(conn, PipelinedConnection):
                raw = await conn.call("EVALSHA", self.sha, numkeys, *laid)
            else:
                raw = await conn.evalsha(self.sha, numkeys, *laid)
        except ResponseError as exc:
            if not isinstance(exc, NoScriptError) and not str(exc).startswith("NOSCRIPT"):  # redis-py's or ours
                raise
            raw = await (conn.call("EVAL", self.source, numkeys, *laid) if isinstance(conn, PipelinedConnection)
                         else conn.eval(self.source, numkeys, *laid))
        return self.reply(raw)

    def send(self, conn: PipelinedConnection, **values: Value) -> None:
        """Send it without waiting (errors are logged), in order with the connection's other commands."""
        numkeys, laid = self.layout(values)
        conn.send("EVAL", self.source, numkeys, *laid)

    def queue(self, pipe: Pipeline, **values: Value) -> None:
        """Add it to a redis-py pipeline; its raw reply is among those of `execute()`, for `reply`."""
        numkeys, laid = self.layout(values)
        pipe.eval(self.source, numkeys, *laid)
