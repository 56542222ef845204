"""OpenAI's Responses API. llama.cpp's server speaks it (`/v1/responses`), so bodies are checked here and
passed through, its stream events told with their `event:` lines. `previous_response_id` is the gateway's:
each response's conversation is kept as a session named by its id, and a request continuing it has that
conversation put before its input."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from graycat.api.dialects import JobSpec, is_deterministic


class ResponsesRequest(BaseModel):
    """`POST /v1/responses`: the fields the gateway checks; every other field goes to the engine untouched."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="A model name from /v1/models, or 'default'.")
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = None
    previous_response_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    stream: bool = False
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)


def responses_job(req: ResponsesRequest) -> JobSpec:
    return JobSpec("/v1/responses", req.stream, req.model, req.max_output_tokens,
                   is_deterministic(None, req.temperature))


def input_items(req: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input as a list of items (a text is one user message)."""
    return [{"role": "user", "content": req.input}] if isinstance(req.input, str) else req.input


def with_history(raw: bytes, history: list[dict[str, Any]]) -> bytes:
    """The engine request: the earlier conversation before the input, no `previous_response_id`."""
    body = orjson.loads(raw)
    body.pop("previous_response_id", None)
    body["input"] = [*history, *input_items(ResponsesRequest.model_validate(body))]
    return orjson.dumps(body)


def output_items(response: dict[str, Any]) -> list[dict[str, Any]]:
    """A response's output as input items of a later turn: its text as an assistant message, its function
    calls as they are."""
    items: list[dict[str, Any]] = []
    for item in response.get("output", []):
        if item.get("type") == "message":
            text = "".join(p.get("text", "") for p in item.get("content", []) if p.get("type") == "output_text")
            items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]})
        elif item.get("type") == "function_call":
            items.append({k: item[k] for k in ("type", "call_id", "name", "arguments") if k in item})
    return items


def completed(payload: bytes) -> dict[str, Any] | None:
    """The whole response a stream event carries when the response is done, else None."""
    if b'"response.completed"' not in payload:
        return None
    event = orjson.loads(payload)
    return event.get("response") if event.get("type") == "response.completed" else None


def stream_error(status: int, message: str) -> bytes:
    """The event that ends a Responses stream that failed midway."""
    return b"event: error\ndata: " + orjson.dumps({"type": "error", "code": str(status), "message": message,
                                                    "param": None}) + b"\n\n"
