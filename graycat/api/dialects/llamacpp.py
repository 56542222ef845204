"""llama.cpp's native server API (what "LLM for Unity" speaks): bodies are passed through to the engine."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from graycat.api.dialects import JobSpec, is_deterministic


class CompletionRequest(BaseModel):
    """`POST /completion`: the fields the gateway checks; every other field goes to the engine untouched."""

    model_config = ConfigDict(extra="allow")

    prompt: str | list[Any] = Field(description="Raw prompt text (no chat template is applied) or token ids.")
    stream: bool = False
    n_predict: int = Field(-1, ge=-2, description="Tokens to generate; -1 until end of generation, 0 none.")
    model: str | None = Field(None, description="A model name from /v1/models; default model otherwise.")
    seed: int | None = None
    temperature: float | None = None

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, value: str | list[Any]) -> str | list[Any]:
        if len(value) == 0:
            raise ValueError("prompt must not be empty")
        return value


def completion_job(req: CompletionRequest) -> JobSpec:
    return JobSpec("/completion", req.stream, req.model, req.n_predict if req.n_predict > 0 else None,
                   is_deterministic(req.seed, req.temperature))


def sse_event(payload: bytes) -> bytes:
    """One server-sent event as llama.cpp writes it: `data: <json>` and a blank line, nothing else."""
    return b"data: " + payload + b"\n\n"


def stream_error(status: int, message: str) -> bytes:
    """The last event of a stream that failed midway, in llama.cpp's error shape."""
    return sse_event(orjson.dumps({"error": {"code": status, "message": message, "type": "server_error"}}))
