"""OpenAI-compatible routes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.auth import require_token
from graycat.api.dialects import llamacpp, openai
from graycat.api.relay import run_job
from graycat.api.routes import json_response
from graycat.queue.client import served_models

router = APIRouter(prefix="/v1", tags=["OpenAI"], dependencies=[Depends(require_token)])


@router.post("/chat/completions", summary="Chat completion (OpenAI)")
async def chat_completions(request: Request, body: openai.ChatCompletionRequest) -> Response:
    return await run_job(request, openai.chat_job(body), kind="llm", render_chunk=llamacpp.sse_event,
                         render_failure=openai.stream_error)


@router.post("/completions", summary="Text completion (OpenAI)")
async def completions(request: Request, body: openai.CompletionRequest) -> Response:
    return await run_job(request, openai.completion_job(body), kind="llm", render_chunk=llamacpp.sse_event,
                         render_failure=openai.stream_error)


@router.post("/embeddings", summary="Embeddings (OpenAI), from workers started with --embeddings")
async def embeddings(request: Request, body: openai.EmbeddingsRequest) -> Response:
    return await run_job(request, openai.embeddings_job(body), kind="embed", render_chunk=llamacpp.sse_event,
                         render_failure=openai.stream_error)


@router.get("/models", summary="Models served by live workers")
async def models(request: Request) -> Response:
    queue = request.app.state.queue
    served = served_models(await queue.live_workers())
    known = await queue.models(fresh=True)
    return json_response(openai.model_list({m: known.get(m, {}) for m in served}))
