"""Which model a request means, and whether it may ask for what it asks."""

from __future__ import annotations

from typing import Any

from graycat.api.dialects import JobSpec
from graycat.api.errors import ApiError
from graycat.queue.client import JobQueue

DEFAULT_ALIASES = frozenset({"", "default"})


async def resolve_model(queue: JobQueue, default_model: str, spec: JobSpec, kind: str = "llm") -> str:
    """The served model's name for `spec`; 404 for a model no worker has announced, 400 for a request the
    model's context cannot hold or for embeddings of a model served without them. The default model is always
    accepted: its request waits for a worker."""
    name = default_model if spec.model is None or spec.model in DEFAULT_ALIASES else spec.model
    models = await queue.models()
    info: dict[str, Any] | None = models.get(name)
    if info is None:
        info = (await queue.models(fresh=True)).get(name)
    if info is None and name != default_model:
        known = ", ".join(sorted(queue.cached_model_names() | {default_model}))
        raise ApiError(404, f"model '{name}' not found; available models: {known}", code="model_not_found",
                       param="model")
    if info and kind == "embed" and not info.get("embeddings"):
        raise ApiError(400, f"model '{name}' is served without embeddings: start its worker with --embeddings "
                       "(LLM_EMBEDDINGS=true)", code="embeddings_not_enabled", param="model")
    if info and spec.max_new_tokens is not None:
        n_ctx = int(info.get("n_ctx") or 0)
        if n_ctx and spec.max_new_tokens > n_ctx:
            raise ApiError(400, f"asked for {spec.max_new_tokens} new tokens but the context of model '{name}' "
                           f"holds {n_ctx} tokens per request", code="context_length_exceeded")
    return name
