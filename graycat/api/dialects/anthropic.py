"""Anthropic's Messages API, translated to and from an OpenAI chat completion on the engine (the way llama.cpp's
own `/v1/messages` works, but where the worker controls the engine's slots and prompt cache: llama.cpp's
Anthropic route ignores `cache_prompt`). `/v1/messages/count_tokens` is the engine's own. A tool use the client
requires (`tool_choice` any / tool) runs as the OpenAI dialect's constrained tool call (openai_tools.py), so
any model answers it with a `tool_use` block."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from graycat.api.dialects import JobSpec, Renderer, is_deterministic, one_answer
from graycat.api.dialects import typed_sse_event as sse_event
from graycat.error_shapes import anthropic_error


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
    messages: list[Message]  # may be empty, as llama.cpp takes it (the model then writes from the system prompt)
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
    return {**(req.model_extra or {}), "tools": [{"function": {"parameters": t.input_schema}} for t in req.tools or []]}


def messages_job(req: MessagesRequest) -> JobSpec:
    """The job: an OpenAI chat completion on the engine (see as_openai_chat)."""
    one_answer(req.model_extra or {}, "the Messages API")
    return JobSpec(
        "/v1/chat/completions", req.stream, req.model, req.max_tokens, is_deterministic(None, req.temperature)
    )


def count_tokens_job(req: CountTokensRequest) -> JobSpec:
    return JobSpec("/v1/messages/count_tokens", False, req.model, None)


def tool_choice(req: MessagesRequest) -> str | dict[str, Any] | None:
    """OpenAI chat's `tool_choice` for Anthropic's (None: the engine's default)."""
    choice = req.tool_choice or {}
    kind = choice.get("type")
    if not req.tools or kind is None:
        return None
    if kind in ("auto", "none"):
        return str(kind)
    if kind == "any":
        return "required"
    if kind == "tool":
        if not any(t.name == choice.get("name") for t in req.tools):
            raise ValueError(f"tool_choice names '{choice.get('name')}', which is not among the tools")
        return {"type": "function", "function": {"name": choice["name"]}}
    raise ValueError("tool_choice.type must be 'auto', 'any', 'tool' or 'none'")


def required(choice: str | dict[str, Any] | None) -> bool:
    """Whether a tool call is required: it then runs constrained (openai_tools.py)."""
    return choice == "required" or isinstance(choice, dict)


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic image block as OpenAI's `image_url` part (a data URL for base64 sources)."""
    source = block.get("source") or {}
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url", "")}}
    return {
        "type": "image_url",
        "image_url": {"url": f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"},
    }


def _content(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A message's text, or OpenAI's content parts in order when it carries images (which the engine sees, or
    refuses as llama.cpp does when the model has no vision)."""
    if not any(b.get("type") == "image" for b in blocks):
        return _text(blocks)
    return [
        _image_part(b) if b.get("type") == "image" else {"type": "text", "text": str(b.get("text", ""))}
        for b in blocks
        if b.get("type") in ("image", "text")
    ]


def _openai_messages(req: MessagesRequest) -> list[dict[str, Any]]:
    """The conversation in OpenAI's chat form: text and images, `tool_calls` for tool_use, `tool` messages for
    results."""
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": _text(req.system)})
    for message in req.messages:
        blocks = [{"type": "text", "text": message.content}] if isinstance(message.content, str) else message.content
        for block in blocks:
            if block.get("type") == "tool_result":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id"),
                        "content": _text(block.get("content", "")),
                    }
                )
        calls = [
            {
                "id": b.get("id"),
                "type": "function",
                "function": {"name": b.get("name"), "arguments": orjson.dumps(b.get("input", {})).decode()},
            }
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        content = _content(blocks)
        if calls:
            out.append({"role": "assistant", "content": content or None, "tool_calls": calls})
        elif content or not any(b.get("type") == "tool_result" for b in blocks):
            out.append({"role": message.role, "content": content})
    return out


_ANTHROPIC_ONLY = frozenset({"metadata", "stop_sequences", "thinking", "service_tier", "container", "mcp_servers"})


def as_openai_chat(req: MessagesRequest, choice: str | dict[str, Any] | None) -> bytes:
    """The OpenAI chat request the engine runs. Fields llama.cpp reads that Anthropic has not (`ignore_eos`,
    `n_probs`...) go along; a stream asks for the usage figures at its end, and for timings with each chunk
    (the first tells the prompt's tokens, for `message_start`)."""
    extra = {k: v for k, v in (req.model_extra or {}).items() if k not in _ANTHROPIC_ONLY}
    body: dict[str, Any] = {**extra, "messages": _openai_messages(req), "max_tokens": req.max_tokens}
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description or "", "parameters": t.input_schema},
            }
            for t in req.tools
        ]
    if choice is not None:
        body["tool_choice"] = choice
    if req.model:
        body["model"] = req.model
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if (stop := (req.model_extra or {}).get("stop_sequences")) is not None:
        body["stop"] = stop
    if req.stream:
        body["stream"], body["stream_options"], body["timings_per_token"] = True, {"include_usage": True}, True
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
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_" + call["id"].removeprefix("call_"),
                "name": call["function"]["name"],
                "input": orjson.loads(call["function"]["arguments"]),
            }
        )
    return orjson.dumps(
        {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "content": content,
            "model": data.get("model", ""),
            "stop_reason": _STOP_REASONS.get(choice.get("finish_reason"), "end_turn"),
            "stop_sequence": None,
            "usage": _usage(data.get("usage") or {}),
        }
    )


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    """Anthropic's usage of OpenAI's: input_tokens are the prompt's tokens not read from the cache."""
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
    return {
        "cache_read_input_tokens": cached,
        "input_tokens": int(usage.get("prompt_tokens", 0)) - cached,
        "output_tokens": int(usage.get("completion_tokens", 0)),
    }


def _prompt_usage(chunk: dict[str, Any]) -> dict[str, int]:
    """The usage `message_start` tells, from the timings of the engine's first chunk (timings_per_token)."""
    timings = chunk.get("timings")
    if not isinstance(timings, dict):
        timings = {}
    return {
        "cache_read_input_tokens": int(timings.get("cache_n", 0)),
        "input_tokens": int(timings.get("prompt_n", 0)),
        "output_tokens": 0,
    }


def _carries_output(chunk: dict[str, Any]) -> bool:
    """Whether an OpenAI chat chunk carries text, a tool call, a finish reason or the usage."""
    if chunk.get("usage"):
        return True
    return any(
        (c.get("delta") or {}).get("content") or (c.get("delta") or {}).get("tool_calls") or c.get("finish_reason")
        for c in chunk.get("choices") or []
        if isinstance(c, dict)
    )


def _event(data: dict[str, Any]) -> bytes:
    return sse_event(orjson.dumps(data))


class ChatStream:
    """Renders the engine's OpenAI chat stream as Anthropic's events, chunk by chunk: text and tool calls each
    in their content block, the stop reason and usage at the end."""

    def __init__(self) -> None:
        self._started = self._done = False
        self._block = -1  # index of the current content block
        self._open: str | None = None  # its kind while open: "text" or "tool_use"
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> content block index
        self._stop = "end_turn"

    def __call__(self, payload: bytes) -> bytes:
        if payload == b"[DONE]":
            return b"" if self._done else self._finish({})
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        out: list[bytes] = []
        if not self._started:
            if "timings" not in chunk and not _carries_output(chunk):
                return b""  # a role-only opening chunk: message_start waits for the prompt's timings
            self._started = True
            out.append(
                _event(
                    {
                        "type": "message_start",
                        "message": {
                            "id": "msg_" + str(chunk.get("id", uuid.uuid4().hex)).removeprefix("chatcmpl-"),
                            "type": "message",
                            "role": "assistant",
                            "content": [],
                            "model": chunk.get("model", ""),
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": _prompt_usage(chunk),
                        },
                    }
                )
            )
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if text := delta.get("content"):
                if self._open != "text":
                    out += self._start({"type": "text", "text": ""}, "text")
                out.append(
                    _event(
                        {
                            "type": "content_block_delta",
                            "index": self._block,
                            "delta": {"type": "text_delta", "text": text},
                        }
                    )
                )
            for call in delta.get("tool_calls") or []:
                fn = call.get("function") or {}
                if (index := call.get("index", 0)) not in self._tools:
                    out += self._start(
                        {
                            "type": "tool_use",
                            "id": call.get("id") or "toolu_" + uuid.uuid4().hex[:24],
                            "name": fn.get("name") or "",
                            "input": {},
                        },
                        "tool_use",
                    )
                    self._tools[index] = self._block
                if args := fn.get("arguments"):
                    out.append(
                        _event(
                            {
                                "type": "content_block_delta",
                                "index": self._tools[index],
                                "delta": {"type": "input_json_delta", "partial_json": args},
                            }
                        )
                    )
            if reason := choice.get("finish_reason"):
                self._stop = _STOP_REASONS.get(reason, "end_turn")
        if isinstance(usage := chunk.get("usage"), dict):
            out.append(self._finish(usage))
        return b"".join(out)

    def _start(self, block: dict[str, Any], kind: str) -> list[bytes]:
        out = self._close()
        self._block += 1
        self._open = kind
        return [*out, _event({"type": "content_block_start", "index": self._block, "content_block": block})]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [_event({"type": "content_block_stop", "index": self._block})]

    def _finish(self, usage: dict[str, Any]) -> bytes:
        self._done = True
        return b"".join(
            [
                *self._close(),
                _event(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": self._stop, "stop_sequence": None},
                        "usage": _usage(usage),
                    }
                ),
                _event({"type": "message_stop"}),
            ]
        )


def as_stream(answer: bytes) -> bytes:
    """A whole message told as Anthropic's stream events."""
    message = orjson.loads(answer)
    events = [
        _event(
            {
                "type": "message_start",
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "usage": {**message["usage"], "output_tokens": 0},
                },
            }
        )
    ]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            events.append(
                _event({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            )
            delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
        else:
            events.append(
                _event({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
            )
            delta = {"type": "text_delta", "text": block["text"]}
        events.append(_event({"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(_event({"type": "content_block_stop", "index": index}))
    events.append(
        _event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            }
        )
    )
    events.append(_event({"type": "message_stop"}))
    return b"".join(events)


def stream_error(status: int, message: str) -> bytes:
    """The event that ends an Anthropic stream that failed midway."""
    kind = "overloaded_error" if status in (503, 529) else "api_error"
    return sse_event(anthropic_error(kind, message))


RENDERER = Renderer(sse_event, stream_error)


def chat_renderer() -> Renderer:
    """Messages made of an OpenAI chat: its stream's chunks and its answer, in Anthropic's shapes."""
    return Renderer(ChatStream(), stream_error, from_openai_chat)
