"""Ollama-compatible routes, at the paths Ollama clients call (authenticated by Bearer token)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.access.auth import require_token
from graycat.api.access.parser_limits import check_request
from graycat.api.answer import run_job
from graycat.api.catalog import resolve_model
from graycat.api.dialects import JobSpec, Renderer, ollama, openai_tools
from graycat.api.json_body import JsonBodyRoute
from graycat.api.routes import json_response
from graycat.api.sessions import Session
from graycat.store import folder

router = APIRouter(prefix="/api", tags=["Ollama"], dependencies=[Depends(require_token)], route_class=JsonBodyRoute)


async def _generation(
    request: Request, spec: JobSpec, body: bytes, *, chat: bool, session: Session | None = None
) -> Response:
    state = request.app.state
    model = await resolve_model(state.queue, state.settings.default_model, spec, aliases=state.settings.model_aliases)
    renderer = ollama.renderer(model, chat, spec.endpoint == "/completion")
    if session is not None:
        body = await session.extend(body)
    return await run_job(request, spec, renderer, kind="llm", body=body, session=session)


@router.post("/generate", summary="Generate a completion (Ollama; NDJSON stream unless stream is false)")
async def generate(request: Request, body: ollama.GenerateRequest) -> Response:
    check_request(request, body)
    spec, engine_body = ollama.generate_job(body)
    if not body.prompt:
        return await _loaded(request, spec, chat=False)
    return await _generation(request, spec, engine_body, chat=False)


@router.post("/chat", summary="Chat (Ollama; NDJSON stream unless stream is false)")
async def chat(request: Request, body: ollama.ChatRequest) -> Response:
    check_request(request, body)
    openai_tools.check_tools(body.tools)
    openai_tools.check_tool_calls(body.messages)
    spec, engine_body = ollama.chat_job(body)
    if not body.messages:
        return await _loaded(request, spec, chat=True)
    session = Session.of(request, (body.model_extra or {}).get("session_id"))
    return await _generation(request, spec, engine_body, chat=True, session=session)


async def _loaded(request: Request, spec: JobSpec, *, chat: bool) -> Response:
    state = request.app.state
    model = await resolve_model(state.queue, state.settings.default_model, spec, aliases=state.settings.model_aliases)
    return json_response(ollama.loaded(model, chat))


async def _embed(request: Request, body: ollama.EmbedRequest | ollama.LegacyEmbeddingsRequest) -> Response:
    spec, engine_body = ollama.embed_job(body)
    state = request.app.state
    model = await resolve_model(
        state.queue, state.settings.default_model, spec, "embed", aliases=state.settings.model_aliases
    )
    legacy = isinstance(body, ollama.LegacyEmbeddingsRequest)
    return await run_job(
        request,
        spec,
        Renderer(answer=ollama.reshape_embed(model, legacy)),
        kind="embed",
        body=engine_body,
    )


@router.post("/embed", summary="Embeddings of one or more inputs (Ollama)")
async def embed(request: Request, body: ollama.EmbedRequest) -> Response:
    return await _embed(request, body)


@router.post("/embeddings", summary="Embedding of one prompt (Ollama's older API)")
async def embeddings(request: Request, body: ollama.LegacyEmbeddingsRequest) -> Response:
    return await _embed(request, body)


def _on_disk(request: Request) -> dict[str, dict[str, Any]]:
    """The models folder's GGUF files (GRAYCAT_MODELS_DIR of the gateway), described as workers announce models."""
    return {m.name: folder.described(m) for m in folder.models(request.app.state.settings.models_folder())}


@router.get("/tags", summary="Models served by live workers, and the files of the models folder (Ollama)")
async def tags(request: Request) -> Response:
    served, files = await request.app.state.queue.served_models(), await asyncio.to_thread(_on_disk, request)
    return json_response(
        ollama.tags(
            {
                name: {**files.get(name, {}), **served.get(name, {}), "served": name in served}
                for name in served.keys() | files.keys()
            }
        )
    )


@router.get("/ps", summary="Models loaded in workers (Ollama)")
async def ps(request: Request) -> Response:
    return json_response(ollama.running(await request.app.state.queue.served_models()))


@router.post("/show", summary="A model's details (Ollama)")
async def show(request: Request, body: ollama.ShowRequest) -> Response:
    state = request.app.state
    spec = JobSpec("", False, ollama.model_name(body.model or body.name), None)
    files = await asyncio.to_thread(_on_disk, request)
    name = state.settings.model_aliases.get(spec.model or "", spec.model or "")
    if name in files and name not in await request.app.state.queue.served_models():  # on disk, served by no worker now
        return json_response(ollama.show(name, {**files[name], "served": False}))
    model = await resolve_model(state.queue, state.settings.default_model, spec, aliases=state.settings.model_aliases)
    return json_response(
        ollama.show(model, {**files.get(model, {}), **(await state.queue.models()).get(model, {}), "served": True})
    )


@router.get("/version", summary="The Ollama API version these routes follow")
async def version() -> Response:
    return json_response({"version": ollama.VERSION})
