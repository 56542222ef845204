"""llama.cpp native routes (LLM for Unity)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.auth import require_token
from graycat.api.dialects import llamacpp
from graycat.api.relay import run_job

router = APIRouter(tags=["llama.cpp"], dependencies=[Depends(require_token)])


@router.post("/completion", summary="llama.cpp native completion (raw prompt, SSE when stream is true)")
@router.post("/completions", include_in_schema=False)
async def completion(request: Request, body: llamacpp.CompletionRequest) -> Response:
    return await run_job(request, llamacpp.completion_job(body), kind="llm", render_chunk=llamacpp.sse_event,
                         render_failure=llamacpp.stream_error)
