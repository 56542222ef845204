"""Named scripts: their arguments laid out in the declared order, and EVALSHA falling back to EVAL on NOSCRIPT on
both kinds of connection, against a real Redis."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from graycat.queue.resp import PipelinedConnection
from graycat.queue.script import Script
from tests.conftest import RedisServer

# KEYS: a list, then more lists. ARGV: a separator, then items. Pushes the items to every list; returns the
# separator-joined list of the keys as Lua saw them.
PUSH: Script[bytes] = Script(
    """
for i = 1, #KEYS do redis.call('RPUSH', KEYS[i], unpack(ARGV, 2)) end
return table.concat(KEYS, ARGV[1])
""",
    ("first", "*more"),
    ("sep", "*items"),
    bytes,
)


def test_layout_follows_the_declaration_not_the_call() -> None:
    assert PUSH.layout({"items": [b"x", 2], "sep": 1.5, "more": ("b", "c"), "first": "a"}) == (
        3,
        ["a", "b", "c", "1.5", b"x", 2],
    )
    with pytest.raises(TypeError, match="firts"):
        PUSH.layout({"firts": "a", "more": (), "sep": "", "items": ()})
    with pytest.raises(TypeError, match="more"):  # a spliced argument takes a sequence, the others a value
        PUSH.layout({"first": "a", "more": "b", "sep": "", "items": ()})
    with pytest.raises(TypeError, match="first"):
        PUSH.layout({"first": ["a"], "more": (), "sep": "", "items": ()})


async def test_evalsha_falls_back_to_eval_after_a_script_flush(redis_server: RedisServer) -> None:
    key = f"script:{uuid.uuid4().hex}"
    pipelined = PipelinedConnection(redis_server.url)
    client = aioredis.from_url(redis_server.url)
    try:
        for conn in (pipelined, client, pipelined):  # the first run of each finds no script cached
            await client.script_flush()
            assert await PUSH.run(conn, first=key, more=[f"{key}:2"], sep="|", items=["i"]) == f"{key}|{key}:2".encode()
            assert await client.script_exists(PUSH.sha) == [True]
            assert await PUSH.run(conn, first=key, more=[], sep="|", items=["j", "k"]) == key.encode()
        assert await client.lrange(key, 0, -1) == [b"i", b"j", b"k"] * 3
        assert await client.llen(f"{key}:2") == 3
        PUSH.send(pipelined, first=key, more=[], sep="", items=["sent"])
        async with client.pipeline(transaction=False) as pipe:
            PUSH.queue(pipe, first=key, more=[], sep="", items=["queued"])
            assert PUSH.reply((await pipe.execute())[0]) == key.encode()
        assert (await client.lrange(key, -2, -1)) == [b"sent", b"queued"]
    finally:
        await client.delete(key, f"{key}:2")
        await client.aclose()
        await pipelined.close()


async def test_a_pipelined_connection_loads_its_scripts_when_it_opens(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    conn = PipelinedConnection(redis_server.url, preload=(PUSH.source,))
    try:
        await client.script_flush()
        assert await conn.call("PING") == b"PONG"
        assert await client.script_exists(PUSH.sha) == [True]
    finally:
        await client.aclose()
        await conn.close()
