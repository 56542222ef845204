"""OpenAI's API: requests are checked here and run on the engine's own OpenAI-compatible endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graycat.api.dialects import JobSpec, Renderer, completions_each, is_deterministic, prompt_count, sse_event
from graycat.error_shapes import openai_error


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(min_length=1)
    content: str | list[Any] | None = None


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="A model name from /v1/models, or 'default'.")
    stream: bool = False
    max_tokens: int | None = Field(None, ge=0)
    n: int = Field(1, ge=1, le=16)
    seed: int | None = None
    temperature: float | None = None


class ChatCompletionRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=0)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None


def _text_given(value: str | list[Any]) -> str | list[Any]:
    """A prompt or input: text, texts or token ids, none of them empty."""
    if len(value) == 0 or (isinstance(value, list) and any(v == "" for v in value)):
        raise ValueError("must not be empty")
    return value


class CompletionRequest(_Request):
    prompt: str | list[Any]

    _prompt_given = field_validator("prompt")(_text_given)


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    input: str | list[Any]
    model: str | None = None

    _input_given = field_validator("input")(_text_given)


def embeddings_job(req: EmbeddingsRequest) -> JobSpec:
    return JobSpec("/v1/embeddings", False, req.model, None)


def _completions_each(req: _Request) -> int:
    return completions_each((req.n, (req.model_extra or {}).get("n_cmpl")))


def chat_job(req: ChatCompletionRequest) -> JobSpec:
    limit = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    return JobSpec(
        "/v1/chat/completions",
        req.stream,
        req.model,
        limit,
        is_deterministic(req.seed, req.temperature),
        _completions_each(req),
    )


def input_tokens_job(req: ChatCompletionRequest) -> JobSpec:
    return JobSpec("/v1/chat/completions/input_tokens", False, req.model, None)


def completion_job(req: CompletionRequest) -> JobSpec:
    return JobSpec(
        "/v1/completions",
        req.stream,
        req.model,
        req.max_tokens,
        is_deterministic(req.seed, req.temperature),
        prompt_count(req.prompt) * _completions_each(req),
    )


def model_list(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`GET /v1/models`."""
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": int(info.get("created", 0)),
                "owned_by": "graycat",
                "meta": {k: v for k, v in info.items() if k not in ("created", "props")},
            }
            for name, info in sorted(models.items())
        ],
    }


def stream_error(status: int, message: str) -> bytes:
    """The event that ends an OpenAI stream that failed midway."""
    return b"data: " + openai_error(message, "server_error", None, status) + b"\n\n"


RENDERER = Renderer(sse_event, stream_error)
