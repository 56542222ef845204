"""Dialects: pure translation between an HTTP API's requests and the internal job, no I/O."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a dialect makes of a request: where the engine takes it, and what the gateway checks."""

    endpoint: str
    stream: bool
    model: str | None
    max_new_tokens: int | None
