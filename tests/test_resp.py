"""The minimal RESP codec of the per-token path, and its connections against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from graycat.queue.resp import _INCOMPLETE, PipelinedConnection, encode, parse, subscribe
from tests.conftest import RedisServer


def test_encode_is_binary_safe() -> None:
    assert encode(("SET", b"k\r\n", 12)) == b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$2\r\n12\r\n"


def test_encode_long_and_non_ascii_arguments() -> None:
    long, text = b"x" * 5000, "caf\u00e9"
    assert encode(("SET", long, text)) == b"*3\r\n$3\r\nSET\r\n$5000\r\n" + long + b"\r\n$5\r\ncaf\xc3\xa9\r\n"


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"+OK\r\n", b"OK"),
        (b":42\r\n", 42),
        (b"$-1\r\n", None),
        (b"$5\r\na\r\nbc\r\n", b"a\r\nbc"),
        (b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$0\r\n\r\n", [b"message", b"ch", b""]),
        (b"*2\r\n$-1\r\n$1\r\na\r\n", [None, b"a"]),  # an entry deleted meanwhile, in a claim's reply
        (b"*-1\r\n", None),  # XREADGROUP that timed out
    ],
)
def test_parse_values(data: bytes, value: object) -> None:
    assert parse(data, 0) == (value, len(data))
    for cut in range(len(data)):  # any prefix is incomplete, never wrong
        assert parse(data[:cut], 0)[0] is _INCOMPLETE


def test_parse_error_reply() -> None:
    value, _ = parse(b"-NOSCRIPT no such script\r\n", 0)
    assert isinstance(value, ResponseError) and "NOSCRIPT" in str(value)


@pytest.mark.parametrize(
    "reply",
    [b"-LOADING Redis is loading the dataset in memory", b"-READONLY You can't write", b"-MASTERDOWN Link down"],
)
def test_a_server_that_cannot_take_commands_now_is_a_connection_error(reply: bytes) -> None:
    value, _ = parse(reply + b"\r\n", 0)
    assert isinstance(value, RedisConnectionError) and not isinstance(value, ResponseError)


async def test_pipelined_writes_keep_their_order_and_errors_do_not_break_the_link(redis_server: RedisServer) -> None:
    conn = PipelinedConnection(redis_server.url)
    await conn.call("DEL", "resp:list")
    for i in range(200):
        conn.send("RPUSH", "resp:list", i)
    conn.send("NOSUCHCOMMAND")  # refused, logged
    assert await conn.call("LLEN", "resp:list") == 200
    assert await conn.call("LINDEX", "resp:list", 199) == b"199"
    with pytest.raises(ResponseError):
        await conn.call("INCR", "resp:list")
    await conn.close()


async def test_subscription_hands_over_raw_payloads(redis_server: RedisServer) -> None:
    got: list[bytes] = []
    link = await subscribe(redis_server.url, "resp:ch", got.append)
    redis_server.client().publish("resp:ch", b"\x00binary\r\npayload")
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [b"\x00binary\r\npayload"]
    assert link.transport is not None
    link.transport.close()
    await asyncio.wait_for(link.closed, 2)


async def test_commands_sent_just_before_close_still_reach_redis(redis_server: RedisServer) -> None:
    conn = PipelinedConnection(redis_server.url)
    await conn.call("DEL", "resp:last")
    for i in range(50):  # queued in this turn of the loop, written together
        conn.send("RPUSH", "resp:last", i)
    await conn.close()
    assert redis_server.client().llen("resp:last") == 50
