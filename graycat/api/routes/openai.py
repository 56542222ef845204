"""OpenAI-compatible routes, under `/v1` and, as llama-server serves them, without it (`/chat/completions`,
`GET /models` in queue.py); llama-server's `/completions` and `/embeddings` without `/v1` are its native
routes (llamacpp.py)."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.access.auth import require_token
from graycat.api.access.parser_limits import check_request
from graycat.api.answer import replayed, run_job
from graycat.api.dialects import openai, openai_tools
from graycat.api.errors import ApiError
from graycat.api.json_body import JsonBodyRoute
from graycat.api.routes import json_response
from graycat.api.sessions import Session

router = APIRouter(tags=["OpenAI"], dependencies=[Depends(require_token)], route_class=JsonBodyRoute)


@router.post("/v1/chat/completions", summary="Chat completion (OpenAI)")
@router.post("/chat/completions", include_in_schema=False)
async def chat_completions(request: Request, body: openai.ChatCompletionRequest) -> Response:
    check_request(request, body)
    openai_tools.check_tools(body.tools, body.tool_choice)
    openai_tools.check_tool_calls(body.messages)
    spec = openai.chat_job(body)
    try:
        tools = openai_tools.forced_tools(body)
    except ValueError as exc:
        raise ApiError(400, str(exc), code="invalid_request", param="tool_choice") from None
    session = Session.of(request, (body.model_extra or {}).get("session_id"))
    engine_body = await session.extend(await request.body()) if session else None
    if tools is None:
        return await run_job(request, spec, openai.RENDERER, kind="llm", body=engine_body, session=session)
    answer = await run_job(
        request,
        replace(spec, stream=False),
        replace(openai.RENDERER, answer=openai_tools.tool_call_answer),
        kind="llm",
        body=openai_tools.constrained_body(engine_body or await request.body(), tools),
        session=session,
    )
    if not body.stream or answer.status_code != 200:
        return answer
    usage = bool((body.stream_options or {}).get("include_usage"))
    return replayed(answer, lambda raw: openai_tools.as_stream(raw, usage))


@router.post("/v1/chat/completions/input_tokens", summary="Count the prompt tokens of a chat (llama.cpp)")
@router.post("/chat/completions/input_tokens", include_in_schema=False)
async def chat_input_tokens(request: Request, body: openai.ChatCompletionRequest) -> Response:
    # llama.cpp reads the chat as for a completion: the chat template renders the tools, and a template
    # that calls tools makes a grammar of their schemas
    check_request(request, body)
    openai_tools.check_tools(body.tools, body.tool_choice)
    openai_tools.check_tool_calls(body.messages)
    return await run_job(
        request,
        openai.input_tokens_job(body),
        openai.RENDERER,
        kind="llm",
    )


@router.post("/v1/completions", summary="Text completion (OpenAI)")
async def completions(request: Request, body: openai.CompletionRequest) -> Response:
    check_request(request, body)
    return await run_job(
        request,
        openai.completion_job(body),
        openai.RENDERER,
        kind="llm",
    )


@router.post("/v1/embeddings", summary="Embeddings (OpenAI), from workers started with --embeddings")
async def embeddings(request: Request, body: openai.EmbeddingsRequest) -> Response:
    return await run_job(
        request,
        openai.embeddings_job(body),
        openai.RENDERER,
        kind="embed",
    )


@router.get("/v1/models", summary="Models served by live workers")
async def models(request: Request) -> Response:
    return json_response(openai.model_list(await request.app.state.queue.served_models()))
