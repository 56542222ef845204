"""OpenAI Responses API routes, with and without `/v1` as llama-server serves them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.access.auth import require_token
from graycat.api.access.parser_limits import check_engine_fields
from graycat.api.answer import replayed, run_job
from graycat.api.dialects import JobSpec, Renderer, openai, openai_responses, openai_tools, typed_sse_event
from graycat.api.errors import ApiError
from graycat.api.json_body import JsonBodyRoute
from graycat.api.sessions import Session

router = APIRouter(tags=["OpenAI"], dependencies=[Depends(require_token)], route_class=JsonBodyRoute)


@router.post("/v1/responses", summary="Create a response (OpenAI Responses API; previous_response_id continues one)")
@router.post("/responses", include_in_schema=False)
async def responses(request: Request, body: openai_responses.ResponsesRequest) -> Response:
    check_engine_fields(request, openai_responses.parser_fields(body))
    spec = openai_responses.responses_job(body)
    history: list[dict[str, Any]] = []
    if body.previous_response_id:
        history = await Session.named(request, body.previous_response_id).history()
        if not history:
            raise ApiError(
                404,
                f"previous response '{body.previous_response_id}' not found (expired, or made with another token)",
                code="previous_response_not_found",
                param="previous_response_id",
            )
    conversation = [*history, *openai_responses.input_items(body)]
    engine_body = openai_responses.with_history(await request.body(), history) if history else None

    def keep(response: dict[str, Any]) -> None:
        if isinstance(response.get("id"), str):
            Session.named(request, response["id"]).keep([*conversation, *openai_responses.output_items(response)])

    def reshape(raw: bytes) -> bytes:
        keep(orjson.loads(raw))
        return raw

    try:
        choice = openai_responses.required_tool_choice(body)
        if choice is not None:
            chat = openai_responses.as_openai_chat(body, choice, history)
            chat_request = openai.ChatCompletionRequest.model_validate_json(chat)
            tools = openai_tools.forced_tools(chat_request)
    except ValueError as exc:
        raise ApiError(400, str(exc), code="invalid_request", param="tool_choice") from None
    if choice is not None:
        if not tools:
            raise ApiError(400, "tool_choice requires a function tool in tools", code="invalid_request", param="tools")
        answer = await run_job(
            request,
            replace(openai.chat_job(chat_request), stream=False),
            replace(
                openai_responses.RENDERER,
                answer=lambda raw: reshape(openai_responses.from_openai_chat(openai_tools.tool_call_answer(raw))),
            ),
            kind="llm",
            body=openai_tools.constrained_body(chat, tools),
        )
        if not body.stream or answer.status_code != 200:
            return answer
        return replayed(answer, openai_responses.as_stream)

    def render(payload: bytes) -> bytes:
        if (done := openai_responses.completed(payload)) is not None:
            keep(done)
        return typed_sse_event(payload)

    return await run_job(
        request,
        spec,
        Renderer(render, openai_responses.stream_error, reshape),
        kind="llm",
        body=engine_body,
    )


@router.post("/v1/responses/input_tokens", summary="Count the input tokens of a response request (llama.cpp)")
@router.post("/responses/input_tokens", include_in_schema=False)
async def input_tokens(request: Request, body: openai_responses.ResponsesRequest) -> Response:
    check_engine_fields(request, openai_responses.parser_fields(body))
    return await run_job(
        request,
        JobSpec("/v1/responses/input_tokens", False, body.model, None),
        openai_responses.RENDERER,
        kind="llm",
    )
