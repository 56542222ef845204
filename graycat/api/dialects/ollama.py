"""Ollama's API: requests become engine requests (OpenAI chat, or llama.cpp's native completion for `raw`),
and the engine's chunks become Ollama's NDJSON lines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from graycat.api.dialects import JobSpec, Renderer, is_deterministic
from graycat.api.dialects.openai import ChatMessage
from graycat.error_shapes import ollama_error

VERSION = "0.12.0"  # the Ollama API version these routes follow
NDJSON = "application/x-ndjson"
# options that map onto the engine's sampling parameters (Ollama name -> llama.cpp name)
_OPTIONS = {
    "num_predict": "n_predict",
    "num_keep": "n_keep",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "seed": "seed",
    "stop": "stop",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat": "mirostat",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}
_DONE_REASONS = {"length": "length", "limit": "length"}  # anything else ("stop", "eos", "word") is "stop"


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="A model from /api/tags (':latest' optional); default otherwise.")
    options: dict[str, Any] | None = Field(
        None,
        description="num_predict, temperature, top_k, top_p, min_p, "
        "seed, stop, repeat_penalty, ...; server-side ones (num_ctx, "
        "num_gpu, num_thread) are accepted and ignored.",
    )
    keep_alive: str | int | float | None = Field(None, description="Accepted; workers keep models loaded.")


class _Generation(_Request):
    stream: bool = True
    format: str | dict[str, Any] | None = Field(None, description="'json' or a JSON schema.")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(value, str) and value not in ("", "json"):
            raise ValueError("must be 'json' or a JSON schema object")
        return value


class GenerateRequest(_Generation):
    prompt: str = ""
    system: str | None = None
    raw: bool = Field(False, description="The prompt as is, without the model's chat template.")


class ChatRequest(_Generation):
    messages: list[ChatMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class EmbedRequest(_Request):
    input: str | list[str] = Field(min_length=1)


class LegacyEmbeddingsRequest(_Request):
    prompt: str = Field(min_length=1)


class ShowRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    name: str | None = Field(None, description="The older spelling of `model`.")


def model_name(name: str | None) -> str | None:
    """The served name of an Ollama model reference: the `:latest` tag is implied."""
    return name.removesuffix(":latest") if name else name


def tagged(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _sampling(req: _Generation, native: bool) -> dict[str, Any]:
    """Sampling options and `format` as the engine's native (`json_schema`) or OpenAI endpoint takes them."""
    body = {_OPTIONS[k]: v for k, v in (req.options or {}).items() if k in _OPTIONS and v is not None}
    if req.format is None or req.format == "":
        return body
    schema = req.format if isinstance(req.format, dict) else {"type": "object"}
    if native:
        body["json_schema"] = schema
    elif isinstance(req.format, dict):
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "format", "schema": schema}}
    else:
        body["response_format"] = {"type": "json_object"}
    return body


def _spec(endpoint: str, req: _Generation, body: dict[str, Any]) -> JobSpec:
    n_predict = body.get("n_predict")
    return JobSpec(
        endpoint,
        req.stream,
        model_name(req.model),
        n_predict if isinstance(n_predict, int) and n_predict > 0 else None,
        is_deterministic(body.get("seed"), body.get("temperature")),
    )


def _chat_message(message: ChatMessage) -> dict[str, Any]:
    """An Ollama message as the engine's OpenAI endpoint takes it (tool call arguments as JSON text)."""
    out = message.model_dump(exclude_none=True)
    out.pop("images", None)
    if calls := out.get("tool_calls"):
        out["tool_calls"] = [
            {
                "type": "function",
                "id": c.get("id", f"call_{i}"),
                "function": {
                    "name": c["function"]["name"],
                    "arguments": orjson.dumps(c["function"].get("arguments", {})).decode(),
                },
            }
            for i, c in enumerate(calls)
        ]
    return out


def chat_job(req: ChatRequest) -> tuple[JobSpec, bytes]:
    body = {**_sampling(req, False), "messages": [_chat_message(m) for m in req.messages], "stream": req.stream}
    if req.tools:
        body["tools"] = req.tools
    return _spec("/v1/chat/completions", req, body), orjson.dumps(body)


def generate_job(req: GenerateRequest) -> tuple[JobSpec, bytes]:
    sampling = _sampling(req, req.raw)
    if req.raw:
        return _spec("/completion", req, sampling), orjson.dumps(
            {**sampling, "prompt": req.prompt, "stream": req.stream}
        )
    messages = [{"role": "system", "content": req.system}] if req.system else []
    messages.append({"role": "user", "content": req.prompt})
    body = {**sampling, "messages": messages, "stream": req.stream}
    return _spec("/v1/chat/completions", req, body), orjson.dumps(body)


def embed_job(req: EmbedRequest | LegacyEmbeddingsRequest) -> tuple[JobSpec, bytes]:
    text = req.prompt if isinstance(req, LegacyEmbeddingsRequest) else req.input
    return JobSpec("/v1/embeddings", False, model_name(req.model), None), orjson.dumps({"input": text})


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _timings(timings: dict[str, Any] | None) -> dict[str, int]:
    """Ollama's durations (nanoseconds) and counts from the engine's timings."""
    t = timings or {}
    prompt_ns, eval_ns = int(t.get("prompt_ms", 0) * 1e6), int(t.get("predicted_ms", 0) * 1e6)
    return {
        "total_duration": prompt_ns + eval_ns,
        "load_duration": 0,
        "prompt_eval_count": int(t.get("prompt_n", 0)),
        "prompt_eval_duration": prompt_ns,
        "eval_count": int(t.get("predicted_n", 0)),
        "eval_duration": eval_ns,
    }


def _tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        fn = call.get("function") or {}
        args = fn.get("arguments") or "{}"
        try:
            parsed = orjson.loads(args) if isinstance(args, str) else args
        except orjson.JSONDecodeError:
            parsed = {}
        out.append({"function": {"name": fn.get("name", ""), "arguments": parsed}})
    return out


def _line(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data) + b"\n"


def _reply(model: str, field: str, content: str, tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    if field == "response":
        return {"model": model, "created_at": _now(), "response": content}
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = _tool_calls(tool_calls)
    return {"model": model, "created_at": _now(), "message": message}


def render_stream(model: str, chat: bool, native: bool) -> Callable[[bytes], bytes]:
    """Engine chunk -> Ollama NDJSON line (`message` for /api/chat, `response` for /api/generate); empty for
    chunks Ollama has no line for (the role-only first chunk, `[DONE]`)."""
    field = "message" if chat else "response"
    model = tagged(model)

    def render(payload: bytes) -> bytes:
        if payload == b"[DONE]":
            return b""
        data = orjson.loads(payload)
        if native:
            content, calls = data.get("content", ""), None
            finish = data.get("stop_type") if data.get("stop") else None
        else:
            if not (choices := data.get("choices")):
                return b""
            delta, finish = choices[0].get("delta") or {}, choices[0].get("finish_reason")
            content, calls = delta.get("content") or "", delta.get("tool_calls")
        line = _reply(model, field, content, calls)
        if finish is None:
            return _line({**line, "done": False}) if content or calls else b""
        return _line(
            {**line, "done": True, "done_reason": _DONE_REASONS.get(finish, "stop"), **_timings(data.get("timings"))}
        )

    return render


def reshape_answer(model: str, chat: bool, native: bool) -> Callable[[bytes], bytes]:
    """The engine's whole answer -> Ollama's single non-streamed object."""
    field = "message" if chat else "response"
    model = tagged(model)

    def reshape(body: bytes) -> bytes:
        data = orjson.loads(body)
        if native:
            content, calls, finish = data.get("content", ""), None, data.get("stop_type", "stop")
        else:
            choice = data["choices"][0]
            message = choice.get("message") or {}
            content, calls, finish = message.get("content") or "", message.get("tool_calls"), choice["finish_reason"]
        return orjson.dumps(
            {
                **_reply(model, field, content, calls),
                "done": True,
                "done_reason": _DONE_REASONS.get(finish, "stop"),
                **_timings(data.get("timings")),
            }
        )

    return reshape


def reshape_embed(model: str, legacy: bool) -> Callable[[bytes], bytes]:
    """The engine's OpenAI embeddings -> `/api/embed` (`embeddings`, one per input) or `/api/embeddings`."""

    def reshape(body: bytes) -> bytes:
        data = orjson.loads(body)
        vectors = [item["embedding"] for item in sorted(data["data"], key=lambda d: d["index"])]
        if legacy:
            return orjson.dumps({"embedding": vectors[0]})
        return orjson.dumps(
            {
                "model": tagged(model),
                "embeddings": vectors,
                "total_duration": 0,
                "load_duration": 0,
                "prompt_eval_count": int((data.get("usage") or {}).get("prompt_tokens", 0)),
            }
        )

    return reshape


def loaded(model: str, chat: bool) -> dict[str, Any]:
    """The answer to a request without a prompt: Ollama's way to load a model (ours are always loaded)."""
    reply = _reply(tagged(model), "message" if chat else "response", "", None)
    return {**reply, "done": True, "done_reason": "load"}


def _details(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "gguf",
        "family": info.get("family", ""),
        "families": None,
        "parameter_size": info.get("parameter_size", ""),
        "quantization_level": info.get("quantization", ""),
    }


def _modified(info: dict[str, Any]) -> str:
    return datetime.fromtimestamp(int(info.get("created", 0)), UTC).isoformat().replace("+00:00", "Z")


def _entry(name: str, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": tagged(name),
        "model": tagged(name),
        "modified_at": _modified(info),
        "size": int(info.get("size", 0)),
        "digest": info.get("digest", ""),
        "details": _details(info),
        "served": bool(info.get("served", True)),
    }


def tags(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`GET /api/tags`: the models live workers serve and those of the models folder (`served` tells which are
    served now; size, digest, family and quantisation come from the file)."""
    return {"models": [_entry(n, i) for n, i in sorted(models.items())]}


def running(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`GET /api/ps`: every served model is loaded in a worker; it stays so (no expiry)."""
    return {
        "models": [
            {
                **_entry(n, i),
                "expires_at": "0001-01-01T00:00:00Z",
                "size_vram": 0,
                "context_length": int(i.get("n_ctx", 0)),
            }
            for n, i in sorted(models.items())
        ]
    }


def show(name: str, info: dict[str, Any]) -> dict[str, Any]:
    """`POST /api/show`."""
    capabilities = ["completion"] + (["embedding"] if info.get("embeddings") else [])
    return {
        "modelfile": f"FROM {name}\n",
        "parameters": "",
        "template": info.get("template", ""),
        "details": _details(info),
        "capabilities": capabilities,
        "model_info": {
            "general.architecture": info.get("family", ""),
            "general.size_label": info.get("parameter_size", ""),
            "context_length": int(info.get("n_ctx", 0)),
            "slots": int(info.get("slots", 0)),
        },
        "size": int(info.get("size", 0)),
        "digest": info.get("digest", ""),
        "served": bool(info.get("served")),
        "modified_at": _modified(info),
    }


def stream_error(status: int, message: str) -> bytes:
    """The last NDJSON line of a stream that failed midway."""
    return ollama_error(message) + b"\n"


def renderer(model: str, chat: bool, native: bool) -> Renderer:
    """A generation's NDJSON stream and answer, in Ollama's shapes."""
    return Renderer(render_stream(model, chat, native), stream_error, reshape_answer(model, chat, native), NDJSON)
