"""Several models behind one worker: each job runs on the engine of the model it names."""

from __future__ import annotations

from typing import Any

from graycat.jobs import Job
from graycat.workers.engines.base import Emit, Engine


class ModelRouter:
    """One engine per model, offered to the worker as one engine with all their slots."""

    def __init__(self, engines: list[Engine]) -> None:
        self.kind = engines[0].kind
        self._engines = engines
        self._by_model: dict[str, Engine] = {}

    @property
    def slots(self) -> int:
        return sum(e.slots for e in self._engines)

    async def start(self) -> None:
        for engine in self._engines:
            await engine.start()
            for name in engine.models():
                if name in self._by_model:
                    raise ValueError(f"two models of this worker are named '{name}': give them distinct names")
                self._by_model[name] = engine

    def models(self) -> dict[str, dict[str, Any]]:
        return {name: info for e in self._engines for name, info in e.models().items()}

    def stats(self) -> dict[str, Any]:
        per_model = {name: e.stats() for name, e in self._by_model.items()}
        return {
            "active": sum(s.get("active", 0) for s in per_model.values()),
            "served": sum(s.get("served", 0) for s in per_model.values()),
            "models": per_model,
        }

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        return await self._by_model[job.model].run(job, emit)  # the worker claims only its models' pools

    async def close(self) -> None:
        for engine in self._engines:
            await engine.close()
