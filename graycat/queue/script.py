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
    _plan: tuple[tuple[tuple[str, bool], ...], tuple[tuple[str, bool], ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())
        object.__setattr__(
            self,
            "_plan",
            tuple(tuple((n.lstrip("*"), n.startswith("*")) for n in names) for names in (self.keys, self.args)),
        )

    def layout(self, values: dict[str, Value]) -> tuple[int, list[Arg]]:
        """numkeys, then the keys and the arguments, as EVAL and EVALSHA take them after the script."""
        keys_plan, args_plan = self._plan
        try:
            if len(values) == len(keys_plan) + len(args_plan):  # then none is unknown unless one is missing
                keys = _flat(keys_plan, values)
                return len(keys), keys + _flat(args_plan, values)
        except KeyError:
            pass
        expected = {name for name, _ in keys_plan + args_plan}
        raise TypeError(
            f"script arguments: unknown {sorted(values.keys() - expected)}, missing {sorted(expected - values.keys())}"
        )

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
            raw = await (
                conn.call("EVAL", self.source, numkeys, *laid)
                if isinstance(conn, PipelinedConnection)
                else conn.eval(self.source, numkeys, *laid)
            )
        return self.reply(raw)

    def send(self, conn: PipelinedConnection, **values: Value) -> None:
        """Send it without waiting (errors are logged), in order with the connection's other commands."""
        numkeys, laid = self.layout(values)
        conn.send("EVAL", self.source, numkeys, *laid)

    def queue(self, pipe: Pipeline, **values: Value) -> None:
        """Add it to a redis-py pipeline; its raw reply is among those of `execute()`, for `reply`."""
        numkeys, laid = self.layout(values)
        pipe.eval(self.source, numkeys, *laid)


def _flat(plan: tuple[tuple[str, bool], ...], values: dict[str, Value]) -> list[Arg]:
    out: list[Arg] = []
    for name, spliced in plan:
        value = values[name]
        if spliced and isinstance(value, (list, tuple)):
            out.extend(value)
        elif spliced:
            raise TypeError(f"script argument {name} takes a list or tuple, not {type(value).__name__}")
        elif type(value) is float:
            out.append(repr(value))
        elif isinstance(value, (bytes, str, int)):
            out.append(value)
        else:
            raise TypeError(f"script argument {name}: {type(value).__name__}")
    return out
