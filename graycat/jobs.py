"""The internal job and event types shared by the api and the workers.

A job is what a dialect turns a request into: the engine endpoint to call and the body to send it (the
engines' own languages are passed through, not re-invented). Events travel back from the worker as bytes:
one type byte, then the payload.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from graycat.error_shapes import llamacpp_error

# Event types (first byte of every event).
START = b"s"  # payload: the worker id that claimed the job
CHUNK = b"c"  # payload: one engine stream chunk (the JSON of one SSE `data:` line), passed through as is
END = b"r"  # payload: 3-digit HTTP status + body (the whole answer of a non-streaming job; empty for streams)


class JobState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})
# The engine endpoints that generate text; the gateway caps their tokens (n_predict) for a token with a quota.
TEXT_GENERATION = frozenset({"/completion", "/v1/completions", "/v1/chat/completions", "/v1/responses"})
_CAP_FIELDS = ("n_predict", "max_completion_tokens", "max_tokens", "max_output_tokens")  # llama.cpp's order


def new_id() -> str:
    """A random id in the form of `uuid.uuid4().hex` (32 hex digits, a valid version 4 UUID), made in a third
    of its time: every request makes two (its request id and its job's id)."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    return raw.hex()


def engine_cap(body: dict[str, Any]) -> int | None:
    """The most tokens per completion llama.cpp makes of a text job's `body`: n_predict, else
    max_completion_tokens, else max_tokens (the first given wins); None when it sets no cap (absent, negative,
    or not a number)."""
    for name in _CAP_FIELDS:
        if (value := body.get(name)) is not None:
            return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
    return None


@dataclass(slots=True)
class Job:
    """One unit of work for a worker pool."""

    kind: str
    model: str
    endpoint: str
    body: bytes
    stream: bool
    reply_to: str = ""
    request_id: str = ""  # the X-Request-ID of the HTTP request that made it: logs of api and worker share it
    slots: int = 1  # engine slots it takes: one per prompt (times completions per prompt)
    owner: str = ""  # the fingerprint of the token that sent it: engines keep tenants' slots and caches apart
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)

    def to_fields(self) -> dict[str, bytes | str]:
        return {
            "id": self.id,
            "kind": self.kind,
            "model": self.model,
            "ep": self.endpoint,
            "b": self.body,
            "s": "1" if self.stream else "0",
            "rt": self.reply_to,
            "t": repr(self.created),
            "rid": self.request_id,
            "n": str(self.slots),
            "o": self.owner,
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> Job:
        return cls(
            kind=fields[b"kind"].decode(),
            model=fields[b"model"].decode(),
            endpoint=fields[b"ep"].decode(),
            body=fields[b"b"],
            stream=fields[b"s"] == b"1",
            reply_to=fields[b"rt"].decode(),
            id=fields[b"id"].decode(),
            created=float(fields[b"t"]),
            request_id=fields.get(b"rid", b"").decode(),
            slots=int(fields.get(b"n", b"1")),
            owner=fields.get(b"o", b"").decode(),
        )


def error_body(status: int, message: str, kind: str | None = None) -> bytes:
    """The error body of a job that did not succeed, as every dialect reads it: {"error": {code, message, type}}
    (type by default `invalid_request_error` below 500, else `server_error`)."""
    return llamacpp_error(status, message, kind or ("invalid_request_error" if status < 500 else "server_error"))


def end_event(status: int, body: bytes = b"") -> bytes:
    """Encode the final event of a job."""
    return END + b"%03d" % status + body


def parse_end(payload: bytes) -> tuple[int, bytes]:
    """Decode the payload of an END event into (status, body)."""
    return int(payload[:3]), payload[3:]


@dataclass(frozen=True, slots=True)
class Usage:
    """What a finished job used, counted in its token's daily usage."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
