"""llama.cpp's native server API (what "LLM for Unity" speaks): bodies are passed through to the engine."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from graycat.api.dialects import (
    BadField,
    JobSpec,
    Renderer,
    completions_each,
    is_deterministic,
    prompt_count,
    sse_event,
)
from graycat.api.dialects.openai import ChatMessage
from graycat.chat_templates import DEFAULT as DEFAULT_TEMPLATE
from graycat.error_shapes import llamacpp_error


class CompletionRequest(BaseModel):
    """`POST /completion`: the fields the gateway checks; every other field goes to the engine untouched."""

    model_config = ConfigDict(extra="allow")

    prompt: str | list[Any] | dict[str, Any] = Field(
        description="Raw prompt text (no chat template is applied), token ids, or llama.cpp's multimodal form "
        "{prompt_string, multimodal_data}."
    )
    stream: bool = False
    n_predict: int = Field(-1, ge=-2, description="Tokens to generate; -1 until end of generation, 0 none.")
    model: str | None = Field(None, description="A model name from /v1/models; default model otherwise.")
    seed: int | None = None
    temperature: float | None = None

    @field_validator("prompt")
    @classmethod
    def _not_empty(cls, value: str | list[Any] | dict[str, Any]) -> str | list[Any] | dict[str, Any]:
        if len(value) == 0:
            raise ValueError("prompt must not be empty")
        return value


class TokenizeRequest(BaseModel):
    """`POST /tokenize`: `with_pieces` and `add_special` go to the engine."""

    model_config = ConfigDict(extra="allow")

    content: str
    model: str | None = None


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    tokens: list[int]
    model: str | None = None


MAX_TOKEN_ID = 2**31 - 1  # llama.cpp's token ids are int32: larger ones wrap around
_RANGE_CHECK = re.compile(r"__n \(which is (\d+)\) >= this->size\(\) \(which is (\d+)\)")


def check_token_ids(tokens: list[int]) -> None:
    """BadField for a token id that cannot be in any vocabulary."""
    for i, token in enumerate(tokens):
        if not 0 <= token <= MAX_TOKEN_ID:
            raise BadField(f"tokens.{i}", f"token ids are 0 or more and under 2^31; got {token}")


def vocabulary_error(engine_body: bytes) -> BadField:
    """The engine's failure on an id past its vocabulary (a C++ range check, answered 500), as a 400."""
    found = _RANGE_CHECK.search(engine_body.decode(errors="replace"))
    size = f" of {found[2]} tokens" if found else ""
    return BadField("tokens", f"a token id is not in the model's vocabulary{size}")


class ApplyTemplateRequest(BaseModel):
    """`POST /apply-template` (LLM for Unity v3): the prompt the model's chat template makes of `messages`."""

    model_config = ConfigDict(extra="allow")

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None


class EmbeddingRequest(BaseModel):
    """`POST /embeddings`: LLM for Unity v2 sends only `content`; v3 adds `"stream": false`."""

    model_config = ConfigDict(extra="allow")

    content: str = Field(min_length=1)
    model: str | None = None


def embedding_job(req: EmbeddingRequest) -> JobSpec:
    return JobSpec("/embeddings", False, req.model, None)


def embedding_shape(v3: bool) -> Callable[[bytes], bytes]:
    """The engine's `[{"index": 0, "embedding": [[...]]}]` as each client generation reads it: v3 takes it
    as is; v2 (Unity's JsonUtility) needs an object with one flat vector, `{"embedding": [...]}`."""

    def reshape(body: bytes) -> bytes:
        if v3:
            return body
        vector = orjson.loads(body)[0]["embedding"]
        return orjson.dumps({"embedding": vector[0] if vector and isinstance(vector[0], list) else vector})

    return reshape


SlotAction = Literal["save", "restore", "erase"]
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class SlotsRequest(BaseModel):
    """`POST /slots`: llama.cpp's `?action=` with `filename`, or LLM for Unity's server with the action and a
    `filepath` in the body. Files live in the worker's slot folder: only the file name is used."""

    model_config = ConfigDict(extra="allow")

    id_slot: int = Field(0, ge=0)
    action: SlotAction | None = None
    filename: str | None = None
    filepath: str | None = None
    model: str | None = None

    def file_name(self) -> str | None:
        if self.filename:
            return self.filename
        return self.filepath.replace("\\", "/").rsplit("/", 1)[-1] if self.filepath else None


def slots_job(req: SlotsRequest, action: SlotAction | None, id_slot: int | None, owner: str) -> tuple[JobSpec, bytes]:
    """The engine call for a slot action (the query's action and slot id win over the body's). The file the
    engine sees is in the caller's namespace (`<owner>-<name>`): a token never reads or overwrites another's."""
    action = action or req.action
    if action is None:
        raise ValueError("give the action (save, restore or erase) in the query (?action=) or the body")
    slot = req.id_slot if id_slot is None else id_slot
    if slot < 0:
        raise ValueError("id_slot must be a slot number (0 or more); one request acts on one slot")
    body: dict[str, Any] = {}
    if action != "erase":
        name = req.file_name()
        if not name or not _FILENAME.fullmatch(name) or ".." in name:
            raise ValueError("give a file name (letters, digits, '.', '_', '-'; no folders) in filename or filepath")
        body["filename"] = f"{owner}-{name}"
    return JobSpec(f"/slots/{slot}?action={action}", False, req.model, None), orjson.dumps(body)


def slots_answer(owner: str) -> Callable[[bytes], bytes]:
    """The engine's answer to a slot action with the file name as the client gave it."""

    def reshape(body: bytes) -> bytes:
        answer = orjson.loads(body)
        if isinstance(answer, dict) and isinstance(name := answer.get("filename"), str):
            answer["filename"] = name.removeprefix(f"{owner}-")
        return orjson.dumps(answer)

    return reshape


def engine_call(endpoint: str, req: TokenizeRequest | DetokenizeRequest | ApplyTemplateRequest) -> JobSpec:
    """A short, non-streamed call to one of the engine's own endpoints."""
    return JobSpec(endpoint, False, req.model, None)


def props(name: str, info: dict[str, Any]) -> dict[str, Any]:
    """`/props`: what the model's engine answers (generation defaults, chat template, modalities, build,
    model file name), as its workers announced it, with the gateway's model name; LLM for Unity v3 reads
    `default_generation_settings.n_ctx`."""
    engine = info.get("props") or {}
    defaults = {**engine.get("default_generation_settings", {}), "n_ctx": int(info.get("n_ctx") or 0)}
    return {
        **engine,
        "default_generation_settings": defaults,
        "total_slots": int(info.get("slots") or 0),
        "model_alias": name,
        "model_path": engine.get("model_path", name),
        "chat_template_name": info.get("template", DEFAULT_TEMPLATE),
    }


def slots(workers: list[dict[str, Any]], model: str, n_ctx: int) -> list[dict[str, Any]]:
    """`GET /slots`: the slots of the model's live workers, busy or idle (no prompts: they are other callers')."""
    out: list[dict[str, Any]] = []
    for worker in workers:
        if model in worker.get("models", []):
            busy = int(worker.get("busy") or 0)
            out.extend(
                {"id": len(out), "n_ctx": n_ctx, "is_processing": i < busy}
                for i in range(int(worker.get("slots") or 0))
            )
    return out


def completion_job(req: CompletionRequest) -> JobSpec:
    extra = req.model_extra or {}
    return JobSpec(
        "/completion",
        req.stream,
        req.model,
        req.n_predict if req.n_predict > 0 else None,
        is_deterministic(req.seed, req.temperature),
        prompt_count(req.prompt) * completions_each((extra.get("n"), extra.get("n_cmpl"))),
    )


def stream_error(status: int, message: str) -> bytes:
    """The last event of a stream that failed midway, in llama.cpp's error shape."""
    return sse_event(llamacpp_error(status, message, "server_error"))


RENDERER = Renderer(sse_event, stream_error)
