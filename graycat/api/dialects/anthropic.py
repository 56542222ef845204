"""Anthropic's Messages API. llama.cpp's server speaks it (`/v1/messages`, `/v1/messages/count_tokens`), so
bodies are checked here and passed through; its stream events are told with their `event:` lines. A tool use
the client requires (`tool_choice` any / tool) runs as the OpenAI dialect's constrained tool call
(openai_tools.py), translated here both ways, so any model answers it with a `tool_use` block."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from graycat.api.dialects import JobSpec, is_deterministic
from graycat.api.dialects import typed_sse_event as sse_event


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class Tool(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class CountTokensRequest(BaseModel):
    """`POST /v1/messages/count_tokens`."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="A model name from /v1/models, or 'default'.")
    messages: list[Message] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[Tool] | None = None


class MessagesRequest(CountTokensRequest):
    """`POST /v1/messages`: the fields the gateway checks; every other field goes to the engine untouched."""

    max_tokens: int = Field(ge=1)
    stream: bool = False
    temperature: float | None = Field(None, ge=0)
    tool_choice: dict[str, Any] | None = None


def parser_fields(req: CountTokensRequest) -> dict[str, Any]:
    """What of the request reaches llama.cpp's parsers, in the shape parser_limits reads: the tools' schemas."""
    return {**(req.model_extra or {}),
            "tools": [{"function": {"parameters": t.input_schema}} for t in req.tools or []]}


def messages_job(req: MessagesRequest) -> JobSpec:
    return JobSpec("/v1/messages", req.stream, req.model, req.max_tokens, is_deterministic(None, req.temperature))


def count_tokens_job(req: CountTokensRequest) -> JobSpec:
    return JobSpec("/v1/messages/count_tokens", False, req.model, None)


def required_tool_choice(req: MessagesRequest) -> dict[str, Any] | None:
    """OpenAI's `tool_choice` for a tool use the client requires, or None when the model may answer freely."""
    choice = req.tool_choice or {}
    if not req.tools or choice.get("type") in (None, "auto", "none"):
        return None
    if choice["type"] == "any":
        return {"required": True}
    if choice["type"] == "tool":
        if not any(t.name == choice.get("name") for t in req.tools):
            raise ValueError(f"tool_choice names '{choice.get('name')}', which is not among the tools")
        return {"type": "function", "function": {"name": choice["name"]}}
    raise ValueError("tool_choice.type must be 'auto', 'any', 'tool' or 'none'")


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")


def _openai_messages(req: MessagesRequest) -> list[dict[str, Any]]:
    """The conversation in OpenAI's chat form: text, `tool_calls` for tool_use, `tool` messages for results."""
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": _text(req.system)})
    for message in req.messages:
        blocks = [{"type": "text", "text": message.content}] if isinstance(message.content, str) else message.content
        for block in blocks:
            if block.get("type") == "tool_result":
                result = block.get("content", "")
                out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": _text(result)})
        calls = [{"id": b.get("id"), "type": "function",
                  "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input", {})).decode()}}
                 for b in blocks if b.get("type") == "tool_use"]
        text = _text(blocks)
        if calls:
            out.append({"role": "assistant", "content": text or None, "tool_calls": calls})
        elif text or not any(b.get("type") == "tool_result" for b in blocks):
            out.append({"role": message.role, "content": text})
    return out


def as_openai_chat(req: MessagesRequest, tool_choice: dict[str, Any]) -> bytes:
    """The OpenAI chat request (non-streamed) that openai_tools constrains to one call of the tools."""
    body: dict[str, Any] = {"messages": _openai_messages(req), "max_tokens": req.max_tokens,
                            "tools": [{"type": "function", "function": {
                                "name": t.name, "description": t.description or "", "parameters": t.input_schema}}
                                for t in req.tools or []],
                            "tool_choice": "required" if tool_choice.get("required") else tool_choice}
    if req.model:
        body["model"] = req.model
    extra = req.model_extra or {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
                         ("stop_sequences", "stop")):
        value = req.temperature if ours == "temperature" else extra.get(ours)
        if value is not None:
            body[theirs] = value
    return orjson.dumps(body)


_STOP_REASONS = {"tool_calls": "tool_use", "length": "max_tokens", "stop": "end_turn"}


def from_openai_chat(answer: bytes) -> bytes:
    """An OpenAI chat completion (openai_tools' answer) as an Anthropic message."""
    data = orjson.loads(answer)
    choice = data["choices"][0]
    message = choice["message"]
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        content.append({"type": "tool_use", "id": "toolu_" + call["id"].removeprefix("call_"),
                        "name": call["function"]["name"], "input": orjson.loads(call["function"]["arguments"])})
    usage = data.get("usage") or {}
    return orjson.dumps({
        "id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant", "content": content,
        "model": data.get("model", ""), "stop_reason": _STOP_REASONS.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None, "usage": {"input_tokens": int(usage.get("prompt_tokens", 0)),
                                         "output_tokens": int(usage.get("completion_tokens", 0))}})


def _event(data: dict[str, Any]) -> bytes:
    return sse_event(orjson.dumps(data))


def as_stream(answer: bytes) -> bytes:
    """A whole message told as Anthropic's stream events."""
    message = orjson.loads(answer)
    events = [_event({"type": "message_start", "message": {
        **message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 0}}})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            events.append(_event({"type": "content_block_start", "index": index,
                                  "content_block": {**block, "input": {}}}))
            delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
        else:
            events.append(_event({"type": "content_block_start", "index": index,
                                  "content_block": {"type": "text", "text": ""}}))
            delta = {"type": "text_delta", "text": block["text"]}
        events.append(_event({"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(_event({"type": "content_block_stop", "index": index}))
    events.append(_event({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                                             "stop_sequence": None},
                          "usage": {"output_tokens": message["usage"]["output_tokens"]}}))
    events.append(_event({"type": "message_stop"}))
    return b"".join(events)


def stream_error(status: int, message: str) -> bytes:
    """The event that ends an Anthropic stream that failed midway."""
    kind = "overloaded_error" if status in (503, 529) else "api_error"
    return _event({"type": "error", "error": {"type": kind, "message": message}})
