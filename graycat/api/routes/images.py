"""OpenAI's images API, served by the Stable Diffusion workers, and the images it answers by URL."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api import image_jobs
from graycat.api.auth import require_token
from graycat.api.dialects import openai_images
from graycat.api.dialects.a1111 import check_loras, choose_vae
from graycat.api.errors import ApiError
from graycat.queue import image_state

router = APIRouter(prefix="/v1", tags=["OpenAI"], dependencies=[Depends(require_token)])
files = APIRouter(prefix="/v1", tags=["OpenAI"])  # public: an image URL is an unguessable, expiring key


@router.post("/images/generations", summary="Images from a prompt (OpenAI), as base64 PNG")
async def generations(request: Request, body: openai_images.ImageGenerationRequest) -> Response:
    name = await image_jobs.checkpoint(request, body.model if body.model not in (None, "", "default") else None,
                                       "model")
    params = openai_images.to_params(body, checkpoint=name, limits=image_jobs.limits(request),
                                     random_seed=image_jobs.random_seed())
    served = await image_jobs.served_checkpoints(request.app.state.queue)
    check_loras(body.prompt, served.get(name, {}).get("loras", []))
    saved = await image_state.options(request.app.state.queue.redis, request.state.owner)
    params.vae = choose_vae(None, saved.get("sd_vae"), served.get(name, {}).get("vaes", []), "model")
    response = await image_jobs.run(request, params, "/v1/images/generations",
                                    openai_images.images_response(body.prompt))
    if body.response_format != "url" or response.status_code != 200:
        return response
    ids = [secrets.token_urlsafe(24) for _ in range(body.n)]
    answer, pngs = openai_images.with_urls(bytes(response.body), str(request.base_url), ids)
    ttl = request.app.state.settings.result_ttl
    for file_id, png in zip(ids, pngs, strict=True):
        await image_state.store_file(request.app.state.queue.redis, file_id, png, ttl)
    return Response(answer, 200, headers={k: v for k, v in response.headers.items() if k.startswith("x-")},
                    media_type="application/json")


@files.get("/images/files/{file_id}.png", summary="A generated image answered by URL (no token: the URL is the key; "
           "kept RESULT_TTL seconds)")
async def image_file(request: Request, file_id: str) -> Response:
    png = await image_state.load_file(request.app.state.queue.redis, file_id) if len(file_id) <= 64 else None
    if png is None:
        raise ApiError(404, "no such image (the link expired or never existed)", code="not_found")
    return Response(png, 200, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
