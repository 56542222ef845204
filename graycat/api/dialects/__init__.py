"""Dialects: pure translation between an HTTP API's requests and the internal job, no I/O."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a dialect makes of a request: where the engine takes it, and what the gateway checks."""

    endpoint: str
    stream: bool
    model: str | None
    max_new_tokens: int | None
    deterministic: bool = False  # a rerun gives the same output (fixed seed or temperature 0)


RANDOM_SEEDS = frozenset({-1, 0xFFFFFFFF})  # what llama.cpp takes as "pick a random seed"


def is_deterministic(seed: int | None, temperature: float | None) -> bool:
    return temperature == 0 or (seed is not None and seed not in RANDOM_SEEDS)
