"""Which model a request means, and whether it may ask for what it asks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from graycat.api.dialects import JobSpec
from graycat.api.errors import ApiError
from graycat.queue.client import JobQueue, Served

DEFAULT_ALIASES = frozenset({"", "default"})
_WHAT = {"llm": "text", "embed": "embedding", "sd": "image"}
_START = {
    "llm": "graycat worker llm",
    "embed": "graycat worker llm --embeddings",
    "sd": "graycat worker sd --models-dir DIR",
}


async def resolve_model(
    queue: JobQueue,
    default_model: str | None,
    spec: JobSpec,
    kind: str = "llm",
    aliases: Mapping[str, str] | None = None,
) -> str:
    """The served model's name for `spec`, after MODEL_ALIASES.

    A request naming no model (or `default`) gets DEFAULT_MODEL when set, else the one model live workers serve
    for `kind`, else the one a worker declares default (`--default`); several and none declared: 404 listing
    them. A named model must be served by a live worker, ready or still loading (its request waits for it):
    otherwise 404 at once, listing what is served; DEFAULT_MODEL is always accepted (its request waits for a
    worker). 400 for a request the model's context cannot hold or for embeddings of a model served without
    them; 503 at once when no worker of the kind is running and no DEFAULT_MODEL is set.
    """
    if aliases:
        spec = replace(spec, model=await _aliased(queue, aliases, spec.model, kind))
    asked = None if spec.model is None or spec.model in DEFAULT_ALIASES else spec.model
    if asked is None and default_model is None:
        name = await _implicit_default(queue, kind)
    else:
        name = asked or default_model or ""
        if name != default_model:
            await _check_served(queue, name, kind)
    info: dict[str, Any] | None = (await queue.models()).get(name)
    if info is None:
        info = (await queue.models(fresh=True)).get(name)
    if info and kind == "embed" and not info.get("embeddings"):
        raise _no_embeddings(name)
    if info and spec.max_new_tokens is not None:
        n_ctx = int(info.get("n_ctx") or 0)
        if n_ctx and spec.max_new_tokens > n_ctx:
            raise ApiError(
                400,
                f"asked for {spec.max_new_tokens} new tokens but the context of model '{name}' "
                f"holds {n_ctx} tokens per request",
                code="context_length_exceeded",
            )
    return name


async def _implicit_default(queue: JobQueue, kind: str) -> str:
    served = await queue.served()
    choice = _default_of(served, kind)
    if choice is None:
        served = await queue.served(fresh=True)
        choice = _default_of(served, kind)
    if choice is not None:
        return choice
    names = served.models(kind)
    if not names:
        raise _no_worker(kind)
    raise ApiError(
        404,
        f"no default model: live workers serve the {_WHAT.get(kind, kind)} models "
        f'{", ".join(names)}; name one in "model", or set DEFAULT_MODEL, or start one worker with '
        "--default (LLM_DEFAULT=true)",
        code="model_not_found",
        param="model",
    )


def _default_of(served: Served, kind: str) -> str | None:
    """The one model served for `kind`, else the one that workers declare default, else None."""
    names = served.models(kind)
    if len(names) == 1:
        return names[0]
    declared = served.defaults & set(names)
    return next(iter(declared)) if len(declared) == 1 else None


async def _check_served(queue: JobQueue, name: str, kind: str) -> None:
    served = await queue.served()
    if (kind, name) in served.pools:
        return
    served = await queue.served(fresh=True)
    if (kind, name) in served.pools:
        return
    elsewhere = served.kinds_of(name)
    if kind == "embed" and "llm" in elsewhere:
        raise _no_embeddings(name)
    names = served.models(kind)
    what = _WHAT.get(kind, kind)
    if "sd" in elsewhere:
        why = f"'{name}' is an image checkpoint: ask the image routes (/sdapi/v1/txt2img, /v1/images/generations)"
    elif elsewhere:
        why = f"model '{name}' does not serve {what} requests"
    else:
        why = f"model '{name}' not found"
    if not names:
        raise ApiError(
            404,
            f"{why}; no {what} worker is running (start one with `{_START.get(kind, 'graycat worker')}`)",
            code="model_not_found",
            param="model",
        )
    raise ApiError(404, f"{why}; available {what} models: {', '.join(names)}", code="model_not_found", param="model")


def _no_worker(kind: str) -> ApiError:
    return ApiError(
        503,
        f"no {_WHAT.get(kind, kind)} worker is running: start one with `{_START.get(kind, 'graycat worker')}`",
        code="no_worker",
        headers={"Retry-After": "5"},
    )


def _no_embeddings(name: str) -> ApiError:
    return ApiError(
        400,
        f"model '{name}' is served without embeddings: start its worker with --embeddings (LLM_EMBEDDINGS=true)",
        code="embeddings_not_enabled",
        param="model",
    )


async def _aliased(queue: JobQueue, aliases: Mapping[str, str], model: str | None, kind: str) -> str | None:
    """The model an alias names; `*` takes any name no live worker serves for `kind`."""
    if model is None or model in DEFAULT_ALIASES:
        return model
    if model in aliases:
        return aliases[model]
    if (
        "*" in aliases
        and (kind, model) not in (await queue.served()).pools
        and (kind, model) not in (await queue.served(fresh=True)).pools
    ):
        return aliases["*"]
    return model
