"""The interface every engine offers to the worker loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, runtime_checkable

from graycat.jobs import Job

Emit = Callable[[bytes], None]
"""Hands one stream chunk (the JSON of an SSE `data:` line) to the client, without waiting."""


class Engine(Protocol):
    kind: str

    @property
    def slots(self) -> int:
        """Jobs the engine runs at once."""
        ...

    def models(self) -> dict[str, dict[str, Any]]:
        """Name -> info (kind, n_ctx per slot, ...) of each model this engine serves."""
        ...

    def stats(self) -> dict[str, Any]:
        """Figures for the worker's heartbeat."""
        ...

    async def start(self) -> None: ...

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        """Run `job`, emitting stream chunks; return (HTTP status, body). Cancelling the task stops it."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Rescans(Protocol):
    """An engine whose models can change while it runs (an SD worker's models folder)."""

    async def rescan(self) -> None:
        """Look for its models again; `models()` answers the new set afterwards."""
        ...


@runtime_checkable
class Skips(Protocol):
    """An engine that can skip the image being made and go on with a job's next ones (A1111's skip)."""

    def skip(self, job_id: str) -> None:
        """Skip the current image (iteration) of `job_id`, if it runs here."""
        ...


@runtime_checkable
class Pulls(Protocol):
    """An engine that can download a model by reference and then serve it as well (an embedded llama.cpp)."""

    def pull(self, ref: str) -> AsyncIterator[dict[str, Any]]:
        """Download `ref` into the models folder (unless it is there), then serve it: Ollama-shaped progress
        events, the last `{"status": "success", "model": NAME}`. PullError when it cannot."""
        ...

    async def remove(self, name: str) -> str:
        """Stop serving the model `name` and delete its file; what was done, in words. PullError when it cannot."""
        ...

    async def copy(self, name: str, destination: str) -> str:
        """The model `name` again under `destination` in the models folder, served as well; what was done, in
        words. PullError when it cannot."""
        ...
