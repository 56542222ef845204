"""Automatic1111's `/sdapi/v1` routes, for Unity Stable Diffusion integrations and other A1111 clients."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from starlette.responses import Response

from graycat.api import image_jobs
from graycat.api.auth import TokenFirstRoute, require_token_or_basic
from graycat.api.dialects import a1111
from graycat.api.errors import ApiError
from graycat.api.routes import json_response
from graycat.images import codec, infotext, upscalers
from graycat.images.samplers import sampler_list, schedule_list
from graycat.jobs import TERMINAL_STATES
from graycat.queue import image_state

router = APIRouter(prefix="/sdapi/v1", tags=["Automatic1111"], dependencies=[Depends(require_token_or_basic)],
                   route_class=TokenFirstRoute)


async def _generate(request: Request, req: a1111.Txt2ImgRequest, endpoint: str) -> Response:
    raw: dict[str, Any] = req.model_dump(exclude_unset=True)
    wanted = (req.override_settings or {}).get("sd_model_checkpoint")
    name = await image_jobs.checkpoint(request, str(wanted) if wanted else None, "override_settings")
    saved = await image_state.options(request.app.state.queue.redis, request.state.owner)
    served = await image_jobs.served_checkpoints(request.app.state.queue)
    # decoding the images takes a while for large ones: off the event loop, so progress polls stay quick
    params = await asyncio.to_thread(
        a1111.to_params, req, checkpoint=name, model=served.get(name, {}), saved=saved,
        limits=image_jobs.limits(request), random_seeds=(image_jobs.random_seed(), image_jobs.random_seed()))
    echo = a1111.parameters_echo(raw, isinstance(req, a1111.Img2ImgRequest))
    return await image_jobs.run(request, params, endpoint, a1111.with_parameters(echo))


@router.post("/txt2img", summary="Text to image (A1111)")
async def txt2img(request: Request, body: a1111.Txt2ImgRequest) -> Response:
    return await _generate(request, body, "/sdapi/v1/txt2img")


@router.post("/img2img", summary="Image to image and inpainting (A1111)")
async def img2img(request: Request, body: a1111.Img2ImgRequest) -> Response:
    return await _generate(request, body, "/sdapi/v1/img2img")


@router.get("/sd-models", summary="Checkpoints served by live SD workers")
async def sd_models(request: Request) -> Response:
    served = await image_jobs.served_checkpoints(request.app.state.queue)
    return json_response([a1111.checkpoint_entry(info) for info in served.values()])


@router.get("/options", summary="The token's options: current checkpoint, VAE, clip skip")
async def get_options(request: Request) -> Response:
    queue = request.app.state.queue
    saved = await image_state.options(queue.redis, request.state.owner)
    served = await image_jobs.served_checkpoints(queue)
    current = None
    if served:
        current = served[await image_jobs.checkpoint(request, None, "sd_model_checkpoint")]
    return json_response(a1111.options(current, saved))


@router.post("/options", summary="Set options (per token): sd_model_checkpoint by any A1111 name, sd_vae, clip skip")
async def set_options(request: Request, body: dict[str, Any] = Body(...)) -> Response:
    values: dict[str, str] = {}
    if (wanted := body.get("sd_model_checkpoint")) is not None:
        values["sd_model_checkpoint"] = await image_jobs.checkpoint(request, str(wanted), "sd_model_checkpoint")
    if (vae := body.get("sd_vae")) is not None:
        available = sorted({v for info in (await image_jobs.served_checkpoints(request.app.state.queue)).values()
                            for v in info.get("vaes", [])})
        values["sd_vae"] = a1111.choose_vae(vae, None, available, "sd_vae") or "Automatic"
    if (clip := body.get("CLIP_stop_at_last_layers")) is not None:
        if not isinstance(clip, int) or not 1 <= clip <= 12:
            raise ApiError(422, "CLIP_stop_at_last_layers must be an integer from 1 to 12", code="invalid_request",
                           param="CLIP_stop_at_last_layers")
        values["CLIP_stop_at_last_layers"] = str(clip)
    if values:
        await image_state.set_options(request.app.state.queue.redis, request.state.owner, values)
    return json_response(None)


@router.get("/loras", summary="LoRAs of the SD workers' models/Lora folders, for <lora:name:weight>")
async def lora_list(request: Request) -> Response:
    served = await image_jobs.served_checkpoints(request.app.state.queue)
    names = sorted({name for info in served.values() for name in info.get("loras", [])})
    return json_response([{"name": n, "alias": n, "path": n, "metadata": {}} for n in names])


@router.get("/sd-vae", summary="VAEs of the SD workers' models/VAE folders, for the sd_vae option")
async def vae_list(request: Request) -> Response:
    served = await image_jobs.served_checkpoints(request.app.state.queue)
    names = sorted({name for info in served.values() for name in info.get("vaes", [])})
    return json_response([{"model_name": n, "filename": n} for n in names])


@router.post("/refresh-checkpoints", summary="SD workers read their checkpoints folder again")
@router.post("/refresh-loras", summary="SD workers read their LoRA folder again")
@router.post("/refresh-vae", summary="SD workers read their VAE folder again")
async def refresh(request: Request) -> Response:
    await image_jobs.refresh(request)  # one rescan covers every folder: checkpoints, LoRAs, VAEs, ControlNets
    return json_response(None)


@router.get("/samplers", summary="Sampler names this server runs")
async def samplers() -> Response:
    return json_response(sampler_list())


@router.get("/schedulers", summary="Schedule types this server runs")
async def schedulers() -> Response:
    return json_response(schedule_list())


@router.get("/upscalers", summary="Upscalers of the hires fix (enable_hr) this server runs")
async def upscaler_list() -> Response:
    return json_response([{"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
                          for name in upscalers.UPSCALERS if not name.startswith("Latent")])


@router.get("/latent-upscale-modes", summary="Latent upscale modes of the hires fix")
async def latent_upscale_modes() -> Response:
    return json_response([{"name": name} for name in upscalers.UPSCALERS if name.startswith("Latent")])


@router.get("/progress", summary="Progress of the token's current generation, with a live preview")
async def progress(request: Request, skip_current_image: bool = False) -> Response:
    redis = request.app.state.queue.redis
    job_id = await image_state.current(redis, request.state.owner)
    record = await request.app.state.queue.record(job_id) if job_id else None
    # the preview before the progress: a step that comes in between then shows a step past the preview's,
    # never the preview of a step the progress has not reached yet
    preview = await image_state.last_preview(redis, job_id) \
        if job_id and record and record["state"] == "active" and not skip_current_image else None
    last = await image_state.last_progress(redis, job_id) if record and job_id else None
    answer = a1111.progress(record, last, job_id, time.time())
    if last and answer["state"]["job_count"]:
        answer["current_image"] = preview
    return json_response(answer)


@router.post("/interrupt", summary="Stop the token's current generation (it answers 499)")
async def interrupt(request: Request) -> Response:
    queue = request.app.state.queue
    job_id = await image_state.current(queue.redis, request.state.owner)
    record = await queue.record(job_id) if job_id else None
    if job_id and record and record["state"] not in TERMINAL_STATES:
        await queue.cancel(job_id)
    return json_response({})


@router.post("/skip", summary="Skip the image being made by the token's generation; its next ones still run")
async def skip(request: Request) -> Response:
    queue = request.app.state.queue
    job_id = await image_state.current(queue.redis, request.state.owner)
    record = await queue.record(job_id) if job_id else None
    if job_id and record and record["state"] == "active":
        await queue.skip(job_id)
    return json_response(None)


@router.post("/png-info", summary="The A1111 infotext and other text chunks of a PNG")
async def png_info(body: a1111.PngInfoRequest) -> Response:
    try:  # off the event loop: base64 of a large body takes a while
        items = await asyncio.to_thread(codec.header_text, body.image)
    except codec.BadImage as exc:
        raise ApiError(400, f"image {exc}", code="invalid_image", param="image") from None
    text = items.pop("parameters", "")
    return json_response({"info": text, "items": items, "parameters": infotext.parse(text) if text else {}})

