"""Tool calls that the client requires (`tool_choice` "required" or a named function), for any model: the
engine's output is constrained to a JSON call of one of the tools, and the answer is given as `tool_calls`."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from graycat.api.dialects import BadField
from graycat.api.dialects.openai import ChatCompletionRequest, ChatMessage

_TOOL = "{'type': 'function', 'function': {'name': ..., 'parameters': {...}}}"


def check_tools(tools: Any, choice: str | dict[str, Any] | None = None) -> None:
    """BadField unless each tool is a function with a name (and parameters, if any, an object), and
    `tool_choice` one of OpenAI's forms."""
    if tools is not None and not isinstance(tools, list):
        raise BadField("tools", f"must be a list of {_TOOL}")
    for i, tool in enumerate(tools or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type", "function") != "function"
            or not isinstance(fn, dict)
            or not _named(fn)
        ):
            raise BadField(f"tools.{i}", f"a tool is {_TOOL}")
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            raise BadField(f"tools.{i}.function.parameters", "must be a JSON schema object")
    if isinstance(choice, dict) and not (isinstance(fn := choice.get("function"), dict) and _named(fn)):
        raise BadField(
            "tool_choice", "must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}"
        )


def check_tool_calls(messages: list[ChatMessage]) -> None:
    """BadField unless the `tool_calls` of each message are a list of calls of named functions."""
    for i, message in enumerate(messages):
        calls = (message.model_extra or {}).get("tool_calls")
        if calls is None:
            continue
        if not isinstance(calls, list) or not all(
            isinstance(c, dict)
            and isinstance(fn := c.get("function"), dict)
            and _named(fn)
            and isinstance(fn.get("arguments"), str | dict | None)
            for c in calls
        ):
            raise BadField(
                f"messages.{i}.tool_calls", "must be a list of {'function': {'name': ..., 'arguments': ...}}"
            )


def _named(fn: dict[str, Any]) -> bool:
    return isinstance(fn.get("name"), str) and bool(fn["name"])


def forced_tools(req: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    """The tools one of which must be called, or None when the model may answer freely."""
    tools = req.tools or []  # checked by check_tools
    choice = req.tool_choice
    if not tools or choice in (None, "auto", "none"):
        return None
    if isinstance(choice, dict):
        wanted = choice["function"]["name"]
        named = [t for t in tools if t["function"]["name"] == wanted]
        if not named:
            raise ValueError(f"tool_choice names '{wanted}', which is not among the tools")
        return named
    if choice != "required":
        raise ValueError("tool_choice must be 'none', 'auto', 'required' or {'type': 'function', ...}")
    return tools


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": fn["name"]}, "arguments": params},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def constrained_body(raw: bytes, tools: list[dict[str, Any]]) -> bytes:
    """The engine request: no `tools`, a system message listing them, and output constrained to one call."""
    body = orjson.loads(raw)
    for key in ("tools", "tool_choice", "parallel_tool_calls", "stream", "stream_options"):
        body.pop(key, None)
    listing = "\n".join(orjson.dumps(t["function"]).decode() for t in tools)
    instruction = (
        "You call a function to answer. Available functions (JSON):\n"
        + listing
        + '\nReply with one JSON object {"name": <function name>, "arguments": <object>}.'
    )
    body["messages"] = [{"role": "system", "content": instruction}, *map(_plain_message, body["messages"])]
    schemas = [_call_schema(t) for t in tools]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    body["response_format"] = {"type": "json_schema", "json_schema": {"name": "tool_call", "schema": schema}}
    return orjson.dumps(body)


def _plain_message(message: dict[str, Any]) -> dict[str, Any]:
    """Earlier tool calls and results as text, which every chat template can render."""
    if message.get("role") == "assistant" and message.get("tool_calls"):
        calls = [
            {"name": c["function"]["name"], "arguments": c["function"].get("arguments")} for c in message["tool_calls"]
        ]
        return {"role": "assistant", "content": orjson.dumps(calls[0] if len(calls) == 1 else calls).decode()}
    if message.get("role") == "tool":
        return {"role": "user", "content": f"Function result: {message.get('content')}"}
    return message


def tool_call_answer(body: bytes) -> bytes:
    """The engine's constrained answer as an OpenAI chat completion with `tool_calls`; a call cut short by
    max_tokens stays text, with finish_reason "length"."""
    data = orjson.loads(body)
    choices = []
    for choice in data["choices"]:
        try:
            call = orjson.loads(choice["message"]["content"])
        except orjson.JSONDecodeError:
            choices.append(
                {
                    "index": choice["index"],
                    "finish_reason": "length",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": choice["message"]["content"]},
                }
            )
            continue
        choices.append(
            {
                "index": choice["index"],
                "finish_reason": "tool_calls",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{uuid.uuid4().hex[:24]}",
                            "type": "function",
                            "function": {"name": call["name"], "arguments": orjson.dumps(call["arguments"]).decode()},
                        }
                    ],
                },
            }
        )
    return orjson.dumps({**data, "choices": choices})


def as_stream(answer: bytes, include_usage: bool) -> bytes:
    """A whole chat completion told as the chunks of a stream, ending with `[DONE]`."""
    data = orjson.loads(answer)
    head = {
        "id": data.get("id", ""),
        "object": "chat.completion.chunk",
        "created": data.get("created", int(time.time())),
        "model": data.get("model", ""),
    }
    events = []
    for choice in data["choices"]:
        message = choice["message"]
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
        if calls := message.get("tool_calls"):
            delta["tool_calls"] = [{**c, "index": i} for i, c in enumerate(calls)]
        events.append({**head, "choices": [{"index": choice["index"], "delta": delta, "finish_reason": None}]})
        events.append(
            {**head, "choices": [{"index": choice["index"], "delta": {}, "finish_reason": choice["finish_reason"]}]}
        )
    if include_usage:
        events.append({**head, "choices": [], "usage": data.get("usage")})
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
