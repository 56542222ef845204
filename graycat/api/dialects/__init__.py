"""Dialects: pure translation between an HTTP API's requests and the internal job, no I/O."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a dialect makes of a request: where the engine takes it, and what the gateway checks."""

    endpoint: str
    stream: bool
    model: str | None
    max_new_tokens: int | None
    deterministic: bool = False  # a rerun gives the same output (fixed seed or temperature 0)
    prompts: int = 1  # completions the engine makes (prompts x n): each takes a slot
    images: int = 0  # images an image job makes (batch_size x n_iter)


@dataclass(frozen=True, slots=True)
class Renderer:
    """How a dialect writes a job's output for its client. `event` turns an engine chunk into the client's
    stream event (empty: nothing to send); `stream_error` writes the event ending a stream that fails midway;
    `answer` reshapes a successful non-streamed answer (None: as the engine gave it); `media_type` is the
    stream's. A renderer without `event` and `stream_error` answers non-streamed jobs only."""

    event: Callable[[bytes], bytes] | None = None
    stream_error: Callable[[int, str], bytes] | None = None
    answer: Callable[[bytes], bytes] | None = None
    media_type: str = "text/event-stream"


class BadField(ValueError):
    """A field a dialect refuses: answered 400 naming it (`param`), with `code`."""

    def __init__(self, param: str, message: str, code: str = "invalid_request") -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.code = code


RANDOM_SEEDS = frozenset({-1, 0xFFFFFFFF})  # what llama.cpp takes as "pick a random seed"


def is_deterministic(seed: object, temperature: object) -> bool:
    """Whether a rerun gives the same output; the values as sent (an Ollama option may be anything: the engine
    refuses what it cannot read)."""
    fixed = isinstance(seed, int) and not isinstance(seed, bool) and seed not in RANDOM_SEEDS
    return temperature == 0 or fixed


def prompt_count(prompt: object) -> int:
    """How many prompts llama.cpp makes of a `prompt` field: a text, a list of token ids or a list mixing
    texts and token ids is one prompt; any other list holds one prompt per item."""
    if not isinstance(prompt, list):
        return 1
    ids = [isinstance(p, int) and not isinstance(p, bool) for p in prompt]
    if all(ids) or (any(ids) and any(isinstance(p, str) for p in prompt)):
        return 1
    return len(prompt)


def completions_each(values: Iterable[object]) -> int:
    """Completions per prompt, from the `n` / `n_cmpl` values given (whichever is larger; 1 when none is a
    positive number). A number with a fraction counts as llama.cpp reads it (2.0 and 2.5 make 2); one too large
    to read counts as more than any request may ask for."""
    counts = [_count(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return max([c for c in counts if c > 0], default=1)


def _count(value: float) -> int:
    return int(value) if math.isfinite(value) else sys.maxsize


def one_answer(extra: Mapping[str, object], api: str) -> None:
    """400 for `n` or `n_cmpl` other than 1 in a dialect that answers with one message (llama.cpp would make
    the others all the same, unasked for and uncounted)."""
    for name in ("n", "n_cmpl"):
        if extra.get(name) not in (None, 1):
            raise BadField(name, f"{api} makes one answer per request; send a request for each answer")


def sse_event(payload: bytes) -> bytes:
    """One server-sent event as llama.cpp writes it: `data: <json>` and a blank line, nothing else."""
    return b"data: " + payload + b"\n\n"


def typed_sse_event(payload: bytes) -> bytes:
    """One event of a stream whose events have an `event:` line naming the `type` of their data (Anthropic's
    and OpenAI Responses' streams); a plain `data:` event for a payload without a type."""
    try:
        kind = orjson.loads(payload).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        kind = None
    head = b"event: " + kind.encode() + b"\n" if isinstance(kind, str) else b""
    return head + b"data: " + payload + b"\n\n"
