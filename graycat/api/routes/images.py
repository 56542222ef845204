"""OpenAI's images API, served by the Stable Diffusion workers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api import image_jobs
from graycat.api.auth import require_token
from graycat.api.dialects import openai_images
from graycat.api.dialects.a1111 import check_loras

router = APIRouter(prefix="/v1", tags=["OpenAI"], dependencies=[Depends(require_token)])


@router.post("/images/generations", summary="Images from a prompt (OpenAI), as base64 PNG")
async def generations(request: Request, body: openai_images.ImageGenerationRequest) -> Response:
    name = await image_jobs.checkpoint(request, body.model if body.model not in (None, "", "default") else None,
                                       "model")
    params = openai_images.to_params(body, checkpoint=name, limits=image_jobs.limits(request),
                                     random_seed=image_jobs.random_seed())
    served = await image_jobs.served_checkpoints(request.app.state.queue)
    check_loras(body.prompt, served.get(name, {}).get("loras", []))
    return await image_jobs.run(request, params, "/v1/images/generations", openai_images.images_response(body.prompt))
