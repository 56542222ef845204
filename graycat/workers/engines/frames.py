"""The messages between a worker and an engine in a child process, over a local socket: each is a JSON header and
raw bytes (a job's body, a chunk, a result), framed by their two lengths."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson

_LENGTHS = struct.Struct(">II")


def write_frame(writer: asyncio.StreamWriter, header: dict[str, Any], data: bytes = b"") -> None:
    """Queue one message on `writer` (the transport sends it in order, without waiting)."""
    head = orjson.dumps(header)
    writer.write(_LENGTHS.pack(len(head), len(data)) + head + data)


async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """The next message; IncompleteReadError when the other side has gone."""
    head_size, data_size = _LENGTHS.unpack(await reader.readexactly(_LENGTHS.size))
    header = orjson.loads(await reader.readexactly(head_size))
    return header, await reader.readexactly(data_size) if data_size else b""
