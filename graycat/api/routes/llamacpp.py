"""llama.cpp native routes (LLM for Unity): every route also answers POST, as those clients send."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.access.auth import require_token
from graycat.api.access.parser_limits import check_request
from graycat.api.answer import run_job
from graycat.api.catalog import resolve_model
from graycat.api.dialects import JobSpec, llamacpp, openai_tools
from graycat.api.errors import ApiError
from graycat.api.json_body import JsonBodyRoute
from graycat.api.routes import json_response

router = APIRouter(tags=["llama.cpp"], dependencies=[Depends(require_token)], route_class=JsonBodyRoute)


async def _run(request: Request, spec: JobSpec) -> Response:
    return await run_job(request, spec, llamacpp.RENDERER, kind="llm")


@router.post("/completion", summary="llama.cpp native completion (raw prompt, SSE when stream is true)")
@router.post("/completions", include_in_schema=False)
async def completion(request: Request, body: llamacpp.CompletionRequest) -> Response:
    check_request(request, body)
    return await _run(request, llamacpp.completion_job(body))


@router.post("/tokenize", summary="Token ids of a text (with_pieces for the pieces too)")
async def tokenize(request: Request, body: llamacpp.TokenizeRequest) -> Response:
    return await _run(request, llamacpp.engine_call("/tokenize", body))


@router.post("/detokenize", summary="The text of token ids")
async def detokenize(request: Request, body: llamacpp.DetokenizeRequest) -> Response:
    llamacpp.check_token_ids(body.tokens)
    answer = await _run(request, llamacpp.engine_call("/detokenize", body))
    if answer.status_code == 500:  # with ids checked above, only an id past the model's vocabulary
        raise llamacpp.vocabulary_error(bytes(answer.body))
    return answer


@router.post("/embeddings", summary="Embedding of a text (served by workers started with --embeddings)")
@router.post("/embedding", include_in_schema=False)
async def embeddings(request: Request, body: llamacpp.EmbeddingRequest) -> Response:
    v3 = "stream" in (body.model_extra or {})  # LLM for Unity v3 always sends it, v2 never
    return await run_job(
        request,
        llamacpp.embedding_job(body),
        replace(llamacpp.RENDERER, answer=llamacpp.embedding_shape(v3)),
        kind="embed",
    )


@router.post("/apply-template", summary="The prompt the model's chat template makes of messages")
async def apply_template(request: Request, body: llamacpp.ApplyTemplateRequest) -> Response:
    check_request(request, body)
    openai_tools.check_tools((body.model_extra or {}).get("tools"))
    openai_tools.check_tool_calls(body.messages)
    return await _run(request, llamacpp.engine_call("/apply-template", body))


@router.post("/slots", summary="Save, restore or erase a slot's KV cache (action in the query or the body)")
@router.post("/slots/{id_slot}", include_in_schema=False)
async def slots(
    request: Request, body: llamacpp.SlotsRequest, action: llamacpp.SlotAction | None = None, id_slot: int | None = None
) -> Response:
    try:
        spec, engine_body = llamacpp.slots_job(body, action, id_slot, request.state.owner)
    except ValueError as exc:
        raise ApiError(400, str(exc), code="invalid_request") from None
    return await run_job(
        request,
        spec,
        replace(llamacpp.RENDERER, answer=llamacpp.slots_answer(request.state.owner)),
        kind="llm",
        body=engine_body,
    )


@router.get("/slots", summary="The model's slots across its live workers, busy or idle (no prompts)")
async def slot_list(request: Request) -> Response:
    name, info = await _model(request)
    workers = await request.app.state.queue.live_workers()
    return json_response(llamacpp.slots(workers, name, int(info.get("n_ctx") or 0)))


async def _model(request: Request) -> tuple[str, dict[str, Any]]:
    """The model a bodiless-or-JSON call means (`model` in the query or the body) and what its workers said."""
    model = request.query_params.get("model")
    raw = await request.body()
    if raw.strip():
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "the request body is not valid JSON", code="invalid_request") from None
        if isinstance(data, dict) and isinstance(data.get("model"), str):
            model = data["model"]
    queue = request.app.state.queue
    name = await resolve_model(
        queue,
        request.app.state.settings.default_model,
        JobSpec("", False, model, None),
        aliases=request.app.state.settings.model_aliases,
    )
    return name, (await queue.models()).get(name, {})


@router.get("/props", summary="Server properties: context size per request, slots (POST too)")
@router.post("/props", include_in_schema=False)
async def props(request: Request) -> Response:
    name, info = await _model(request)
    return json_response(llamacpp.props(name, info))


@router.get("/template", summary="The chat template's name, for LLM for Unity v2 (POST too)")
@router.post("/template", include_in_schema=False)
async def template(request: Request) -> Response:
    _, info = await _model(request)
    return json_response({"template": info.get("template", llamacpp.DEFAULT_TEMPLATE)})
