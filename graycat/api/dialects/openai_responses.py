"""OpenAI's Responses API. llama.cpp's server speaks it (`/v1/responses`), so bodies are checked here and
passed through, its stream events told with their `event:` lines. `previous_response_id` is the gateway's:
each response's conversation is kept as a session named by its id, and a request continuing it has that
conversation put before its input. A function call the client requires (`tool_choice` required / a named
function) runs as the OpenAI dialect's constrained tool call (openai_tools.py), so any model answers it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from graycat.api.dialects import JobSpec, Renderer, is_deterministic, one_answer, typed_sse_event


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


def parser_fields(req: ResponsesRequest) -> dict[str, Any]:
    """What of the request reaches llama.cpp's parsers, in the shape parser_limits reads: the function tools'
    parameters and the `text.format` schema."""
    fields = dict(req.model_extra or {})
    tools = fields.get("tools")
    fields["tools"] = (
        [{"function": {"parameters": t["parameters"]}} for t in tools if isinstance(t, dict) and "parameters" in t]
        if isinstance(tools, list)
        else []
    )
    text = fields.get("text")
    if isinstance(text, dict) and isinstance(fmt := text.get("format"), dict) and "schema" in fmt:
        fields.setdefault("response_format", {"schema": fmt["schema"]})
    return fields


def responses_job(req: ResponsesRequest) -> JobSpec:
    one_answer(req.model_extra or {}, "the Responses API")
    return JobSpec(
        "/v1/responses", req.stream, req.model, req.max_output_tokens, is_deterministic(None, req.temperature)
    )


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
    return (
        b"event: error\ndata: "
        + orjson.dumps({"type": "error", "code": str(status), "message": message, "param": None})
        + b"\n\n"
    )


def required_tool_choice(req: ResponsesRequest) -> str | dict[str, Any] | None:
    """OpenAI chat's `tool_choice` for a function call the client requires, or None when the model may answer
    freely (the engine then decides)."""
    extra = req.model_extra or {}
    choice, tools = extra.get("tool_choice"), extra.get("tools")
    if not isinstance(tools, list) or not tools or choice in (None, "auto", "none"):
        return None
    if choice == "required":
        return "required"
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise ValueError("tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'name': ...}")


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def as_openai_chat(req: ResponsesRequest, tool_choice: str | dict[str, Any], history: list[dict[str, Any]]) -> bytes:
    """The OpenAI chat request (non-streamed) that openai_tools constrains to one call of the function tools."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": req.instructions}] if req.instructions else []
    for item in [*history, *input_items(req)]:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role", "user"), "content": _text(item.get("content"))})
        elif kind == "function_call":
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": item.get("call_id"),
                            "type": "function",
                            "function": {"name": item.get("name"), "arguments": item.get("arguments", "{}")},
                        }
                    ],
                }
            )
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(item.get("output"))})
    extra = req.model_extra or {}
    tools = [
        {"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters") if k in t}}
        for t in extra["tools"]
        if isinstance(t, dict) and t.get("type") == "function"
    ]
    body: dict[str, Any] = {"messages": messages, "tools": tools, "tool_choice": tool_choice}
    for field, value in (
        ("model", req.model),
        ("max_tokens", req.max_output_tokens),
        ("temperature", req.temperature),
        ("top_p", extra.get("top_p")),
    ):
        if value is not None:
            body[field] = value
    return orjson.dumps(body)


def from_openai_chat(answer: bytes) -> bytes:
    """An OpenAI chat completion (openai_tools' answer) as a Response with `function_call` output items."""
    data = orjson.loads(answer)
    message = data["choices"][0]["message"]
    output: list[dict[str, Any]] = []
    if message.get("content"):
        output.append(
            {
                "type": "message",
                "id": "msg_" + uuid.uuid4().hex[:24],
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": message["content"], "annotations": []}],
            }
        )
    for call in message.get("tool_calls") or []:
        output.append(
            {
                "type": "function_call",
                "id": "fc_" + uuid.uuid4().hex[:24],
                "call_id": call["id"],
                "name": call["function"]["name"],
                "arguments": call["function"]["arguments"],
                "status": "completed",
            }
        )
    usage = data.get("usage") or {}
    prompt, made = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    now = int(time.time())
    return orjson.dumps(
        {
            "id": "resp_" + uuid.uuid4().hex[:32],
            "object": "response",
            "created_at": now,
            "completed_at": now,
            "status": "completed",
            "model": data.get("model", ""),
            "output": output,
            "usage": {"input_tokens": prompt, "output_tokens": made, "total_tokens": prompt + made},
        }
    )


def as_stream(answer: bytes) -> bytes:
    """A whole Response told as the Responses API's stream events."""
    response = orjson.loads(answer)
    pending = {**response, "status": "in_progress", "output": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
    ]
    for index, item in enumerate(response["output"]):
        events.append(
            {"type": "response.output_item.added", "output_index": index, "item": {**item, "status": "in_progress"}}
        )
        if item["type"] == "function_call":
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "output_index": index,
                    "item_id": item["id"],
                    "delta": item["arguments"],
                }
            )
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "output_index": index,
                    "item_id": item["id"],
                    "arguments": item["arguments"],
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": response})
    return b"".join(typed_sse_event(orjson.dumps({**e, "sequence_number": i})) for i, e in enumerate(events))


RENDERER = Renderer(typed_sse_event, stream_error)
