"""OpenAI Responses API routes, with and without `/v1` as llama-server serves them."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.auth import require_token
from graycat.api.dialects import JobSpec, llamacpp, openai_responses, typed_sse_event
from graycat.api.errors import ApiError
from graycat.api.relay import run_job
from graycat.api.sessions import Session

router = APIRouter(tags=["OpenAI"], dependencies=[Depends(require_token)])


@router.post("/v1/responses", summary="Create a response (OpenAI Responses API; previous_response_id continues one)")
@router.post("/responses", include_in_schema=False)
async def responses(request: Request, body: openai_responses.ResponsesRequest) -> Response:
    spec = openai_responses.responses_job(body)
    history: list[dict[str, Any]] = []
    if body.previous_response_id:
        history = await Session.named(request, body.previous_response_id).history()
        if not history:
            raise ApiError(404, f"previous response '{body.previous_response_id}' not found (expired, or made with "
                           "another token)", code="previous_response_not_found", param="previous_response_id")
    conversation = [*history, *openai_responses.input_items(body)]
    engine_body = openai_responses.with_history(await request.body(), history) if history else None

    def keep(response: dict[str, Any]) -> None:
        if isinstance(response.get("id"), str):
            Session.named(request, response["id"]).keep([*conversation, *openai_responses.output_items(response)])

    def render(payload: bytes) -> bytes:
        if (done := openai_responses.completed(payload)) is not None:
            keep(done)
        return typed_sse_event(payload)

    def reshape(raw: bytes) -> bytes:
        keep(orjson.loads(raw))
        return raw

    return await run_job(request, spec, kind="llm", body=engine_body, render_chunk=render, reshape=reshape,
                         render_failure=openai_responses.stream_error)


@router.post("/v1/responses/input_tokens", summary="Count the input tokens of a response request (llama.cpp)")
@router.post("/responses/input_tokens", include_in_schema=False)
async def input_tokens(request: Request, body: openai_responses.ResponsesRequest) -> Response:
    return await run_job(request, JobSpec("/v1/responses/input_tokens", False, body.model, None), kind="llm",
                         render_chunk=llamacpp.sse_event, render_failure=openai_responses.stream_error)
