"""OpenAI's images API, served by the Stable Diffusion workers, and the images it answers by URL."""

from __future__ import annotations

import asyncio
import secrets
from typing import Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from starlette.responses import Response

from graycat.api import image_jobs
from graycat.api.access.auth import require_token
from graycat.api.dialects import openai_images
from graycat.api.dialects.a1111 import check_loras, choose_vae
from graycat.api.errors import ApiError
from graycat.api.json_body import JsonBodyRoute
from graycat.images import model_choice
from graycat.images.params import GenerationParams
from graycat.queue import image_state

router = APIRouter(prefix="/v1", tags=["OpenAI"], dependencies=[Depends(require_token)], route_class=JsonBodyRoute)
files = APIRouter(prefix="/v1", tags=["OpenAI"])  # public: an image URL is an unguessable, expiring key


async def _checkpoint(request: Request, model: str | None) -> str:
    return await image_jobs.checkpoint(request, model if model not in (None, "", "default") else None, "model")


async def _run(request: Request, params: GenerationParams, endpoint: str, response_format: str) -> Response:
    """Check LoRAs, apply the token's VAE option, run the job; answer with base64 images or with links."""
    served = await image_jobs.served_checkpoints(request.app.state.queue)
    model = served.get(params.checkpoint, {})
    check_loras(params.prompt, model)
    saved = await image_state.options(request.app.state.queue.redis, request.state.owner)
    params.vae = choose_vae(None, saved.get("sd_vae"), model.get("vaes", []), "model", model)
    response = await image_jobs.run(request, params, endpoint, openai_images.images_response(params.prompt))
    if response_format != "url" or response.status_code != 200:
        return response
    ids = [secrets.token_urlsafe(24) for _ in range(params.batch_size)]
    answer, pngs = openai_images.with_urls(bytes(response.body), str(request.base_url), ids)
    ttl = request.app.state.settings.result_ttl
    for file_id, png in zip(ids, pngs, strict=True):
        await image_state.store_file(request.app.state.queue.redis, file_id, png, ttl)
    return Response(
        answer,
        200,
        headers={k: v for k, v in response.headers.items() if k.startswith("x-")},
        media_type="application/json",
    )


@router.post("/images/generations", summary="Images from a prompt (OpenAI)")
async def generations(request: Request, body: openai_images.ImageGenerationRequest) -> Response:
    checkpoint = await _checkpoint(request, body.model)
    family = model_choice.family_of((await image_jobs.served_checkpoints(request.app.state.queue)).get(checkpoint, {}))
    if family is not None and family.base == "sdxl-refiner":
        raise ApiError(
            422,
            f"model '{checkpoint}' is an SDXL refiner, which only redraws images (/v1/images/edits)",
            code="invalid_request",
            param="model",
        )
    params = openai_images.to_params(
        body,
        checkpoint=checkpoint,
        limits=image_jobs.limits(request),
        random_seed=image_jobs.random_seed(),
        default_size=family.size if family else 512,
    )
    return await _run(request, params, "/v1/images/generations", body.response_format)


@router.post("/images/edits", summary="Repaint the transparent areas of an image, or of its mask (OpenAI)")
async def edits(
    request: Request,
    image: UploadFile = File(...),
    prompt: str = Form(..., min_length=1),
    mask: UploadFile | None = File(None),
    model: str | None = Form(None),
    n: int = Form(1, ge=1, le=10),
    size: str | None = Form(None),
    response_format: Literal["b64_json", "url"] = Form("b64_json"),
    steps: int = Form(openai_images.DEFAULT_STEPS, ge=1),
    seed: int | None = Form(None, ge=0),
) -> Response:
    picture, cover = await image.read(), await mask.read() if mask is not None else None
    checkpoint = await _checkpoint(request, model)
    params = await asyncio.to_thread(
        openai_images.edit_params,
        picture,
        cover,
        prompt=prompt,
        n=n,
        size=size,
        steps=steps,
        seed=image_jobs.random_seed() if seed is None else seed,
        checkpoint=checkpoint,
        limits=image_jobs.limits(request),
    )
    return await _run(request, params, "/v1/images/edits", response_format)


@files.get(
    "/images/files/{file_id}.png",
    summary="A generated image answered by URL (no token: the URL is the key; kept RESULT_TTL seconds)",
)
async def image_file(request: Request, file_id: str) -> Response:
    png = await image_state.load_file(request.app.state.queue.redis, file_id) if len(file_id) <= 64 else None
    if png is None:
        raise ApiError(404, "no such image (the link expired or never existed)", code="not_found")
    return Response(png, 200, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
