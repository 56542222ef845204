"""Anthropic Messages API routes (`x-api-key` or Bearer): messages run as OpenAI chat completions."""

from __future__ import annotations

from dataclasses import replace

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.access.auth import require_token
from graycat.api.access.parser_limits import check_engine_fields
from graycat.api.answer import replayed, run_job
from graycat.api.dialects import anthropic, openai, openai_tools
from graycat.api.errors import ApiError
from graycat.api.json_body import JsonBodyRoute

router = APIRouter(
    prefix="/v1/messages", tags=["Anthropic"], dependencies=[Depends(require_token)], route_class=JsonBodyRoute
)


@router.post("", summary="Create a message (Anthropic Messages API; SSE events when stream is true)")
async def messages(request: Request, body: anthropic.MessagesRequest) -> Response:
    check_engine_fields(request, anthropic.parser_fields(body))
    try:
        choice = anthropic.tool_choice(body)
    except ValueError as exc:
        raise ApiError(400, str(exc), code="invalid_request", param="tool_choice") from None
    spec, chat = anthropic.messages_job(body), anthropic.as_openai_chat(body, choice)
    if not anthropic.required(choice):
        return await run_job(
            request,
            spec,
            anthropic.chat_renderer(),
            kind="llm",
            body=chat,
        )
    tools = openai_tools.forced_tools(openai.ChatCompletionRequest.model_construct(**orjson.loads(chat)))
    assert tools is not None  # a required choice names tools that exist (checked above)
    answer = await run_job(
        request,
        replace(spec, stream=False),
        replace(anthropic.RENDERER, answer=lambda raw: anthropic.from_openai_chat(openai_tools.tool_call_answer(raw))),
        kind="llm",
        body=openai_tools.constrained_body(chat, tools),
    )
    if not body.stream or answer.status_code != 200:
        return answer
    return replayed(answer, anthropic.as_stream)


@router.post("/count_tokens", summary="Count the input tokens of a message (Anthropic)")
async def count_tokens(request: Request, body: anthropic.CountTokensRequest) -> Response:
    check_engine_fields(request, anthropic.parser_fields(body))
    return await run_job(
        request,
        anthropic.count_tokens_job(body),
        anthropic.RENDERER,
        kind="llm",
    )
