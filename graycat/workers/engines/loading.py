"""The stand-in for an engine that is still loading: its worker is announced at once, with its models marked
loading, so requests for them wait in the queue instead of being refused."""

from __future__ import annotations

from typing import Any

from graycat.jobs import Job
from graycat.workers.engines.base import Emit


class Loading:
    """Serves nothing yet (no slots): only announces `models` for an engine of `kind`, and the progress of those
    still downloading (`pulls`: name -> completed and total bytes)."""

    slots = 0

    def __init__(self, kind: str, models: dict[str, dict[str, Any]]) -> None:
        self.kind = kind
        self._models = models
        self.pulls: dict[str, dict[str, int | None]] = {}

    def models(self) -> dict[str, dict[str, Any]]:
        return self._models

    def stats(self) -> dict[str, Any]:
        return {"pulling": dict(self.pulls)} if self.pulls else {}

    async def start(self) -> None:
        return None

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        raise RuntimeError("the engine is still loading")  # never claimed: a loading worker has no slots

    async def close(self) -> None:
        return None
