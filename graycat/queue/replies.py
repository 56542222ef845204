"""Typed views of redis-py replies. The queue's clients never decode responses, so replies are bytes; redis-py's
annotations allow str as well, and these helpers say which shape a reply has."""

from __future__ import annotations

from typing import Any, cast

Entries = list[tuple[bytes, dict[bytes, bytes]]]  # XRANGE / XREVRANGE
StreamsReply = list[tuple[bytes, Entries]]  # XREADGROUP


def text(value: bytes | str) -> str:
    """A reply value as text."""
    return value.decode() if isinstance(value, bytes) else value


def entries(reply: Any) -> Entries:
    """An XRANGE / XREVRANGE reply (None: no entries)."""
    return cast(Entries, reply or [])


def streams(reply: Any) -> StreamsReply:
    """An XREADGROUP reply (None: nothing arrived)."""
    return cast(StreamsReply, reply or [])
