"""Automatic1111's `/sdapi/v1` routes, for Unity Stable Diffusion integrations and other A1111 clients."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from starlette.responses import Response

from graycat.api import image_jobs
from graycat.api.access.auth import TokenFirstRoute, require_token_or_basic
from graycat.api.dialects import a1111, a1111_extras, a1111_lists, a1111_options
from graycat.api.errors import ApiError
from graycat.api.routes import json_response
from graycat.images import codec, extras, infotext, upscalers
from graycat.images.samplers import sampler_list, schedule_list
from graycat.jobs import TERMINAL_STATES
from graycat.queue import image_state

router = APIRouter(
    prefix="/sdapi/v1",
    tags=["Automatic1111"],
    dependencies=[Depends(require_token_or_basic)],
    route_class=TokenFirstRoute,
)


async def _generate(request: Request, req: a1111.Txt2ImgRequest, endpoint: str) -> Response:
    raw: dict[str, Any] = req.model_dump(exclude_unset=True)
    wanted = (req.override_settings or {}).get("sd_model_checkpoint")
    name = await image_jobs.checkpoint(request, str(wanted) if wanted else None, "override_settings")
    saved = await image_state.options(request.app.state.queue.redis, request.state.owner)
    served = await image_jobs.served_checkpoints(request.app.state.queue)
    # decoding the images takes a while for large ones: off the event loop, so progress polls stay quick
    params = await asyncio.to_thread(
        a1111.to_params,
        req,
        checkpoint=name,
        model=served.get(name, {}),
        saved=saved,
        limits=image_jobs.limits(request),
        random_seeds=(image_jobs.random_seed(), image_jobs.random_seed()),
        served=served,
    )
    if "width" not in raw or "height" not in raw:  # the checkpoint family's size
        raw = {"width": req.width, "height": req.height, **raw}
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
    queue = request.app.state.queue
    served = await image_jobs.served_checkpoints(queue)
    held = await image_jobs.loaded_checkpoints(queue)
    return json_response([a1111.checkpoint_entry(info, info.get("model_name") in held) for info in served.values()])


@router.get("/options", summary="The token's options: A1111's settings, with what they are here")
async def get_options(request: Request) -> Response:
    queue = request.app.state.queue
    saved = await image_state.options(queue.redis, request.state.owner)
    served = await image_jobs.served_checkpoints(queue)
    current = None
    if served:
        current = served[await image_jobs.checkpoint(request, None, "sd_model_checkpoint")]
    return json_response(a1111_options.current(current, saved))


IGNORED_HEADER = "X-Graycat-Ignored-Options"


@router.post(
    "/options",
    summary="Set options (per token); the header X-Graycat-Ignored-Options lists those that change nothing here",
)
async def set_options(request: Request, body: dict[str, Any] = Body(...)) -> Response:
    if unknown := a1111_options.unknown(body):
        raise ApiError(
            400,
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; nothing was "
            "set (GET /sdapi/v1/options lists the known ones)",
            code="unknown_option",
            param=unknown[0],
        )
    values: dict[str, str] = {}
    for key, value in body.items():
        if key in a1111_options.FIXED or (key in ("sd_model_checkpoint", "sd_vae") and value is None):
            continue
        if key == "sd_model_checkpoint":
            value = await image_jobs.checkpoint(request, str(value), "sd_model_checkpoint")
        elif key == "sd_vae":
            available = sorted(
                {
                    v
                    for info in (await image_jobs.served_checkpoints(request.app.state.queue)).values()
                    for v in info.get("vaes", [])
                }
            )
            value = a1111.choose_vae(value, None, available, "sd_vae") or "Automatic"
        else:
            value = a1111_options.check(key, value, key)
        values[key] = a1111_options.encode(key, value)
    if values:
        await image_state.set_options(request.app.state.queue.redis, request.state.owner, values)
    ignored = sorted(k for k in body if k not in a1111_options.HONOURED)
    return json_response(None, headers={IGNORED_HEADER: ", ".join(ignored)} if ignored else None)


@router.get("/cmd-flags", summary="The A1111 command-line flags that describe this server")
async def cmd_flags(request: Request) -> Response:
    return json_response(a1111_lists.cmd_flags(request.app.state.settings))


@router.get("/realesrgan-models", summary="The ESRGAN-family upscalers of the SD workers' models/RealESRGAN folders")
async def realesrgan_models(request: Request) -> Response:
    found = _model_upscalers(await image_jobs.served_checkpoints(request.app.state.queue))
    return json_response(
        [
            {"name": name, "path": u.get("filename"), "scale": u.get("scale")}
            for name, u in sorted(found.items())
            if str(u.get("filename", "")).startswith("RealESRGAN/")
        ]
    )


@router.get("/hypernetworks", summary="Hypernetworks: none are loaded here")
@router.get("/face-restorers", summary="Face restorers: none are loaded here (restore_faces answers 501)")
@router.get("/prompt-styles", summary="Prompt styles: this server keeps none")
async def empty_list() -> Response:
    return json_response([])


@router.get("/embeddings", summary="Textual inversion embeddings: none are loaded here")
async def embeddings() -> Response:
    return json_response({"loaded": {}, "skipped": {}})


@router.get("/scripts", summary="The A1111 scripts this server runs (script_name)")
async def scripts() -> Response:
    return json_response(a1111_lists.SCRIPTS)


_EXTRAS_RUNNING = asyncio.Semaphore(2)  # images being upscaled at once by this api process (memory)


def _model_upscalers(served: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> announced entry of every ESRGAN-family upscaler a live SD worker serves."""
    return {str(u["name"]): u for info in served.values() for u in info.get("upscalers", []) if isinstance(u, dict)}


async def _extras(request: Request, req: a1111_extras.ExtrasRequest, endpoint: str) -> Response:
    """Upscale in a thread here (filters; at most _EXTRAS_RUNNING at once, so the event loop stays free), or as a
    job on an SD worker serving the model upscalers the request names."""
    served = await image_jobs.served_checkpoints(request.app.state.queue)
    up = a1111_extras.upscale_of(req, sorted(_model_upscalers(served)))
    saved = await image_state.options(request.app.state.queue.redis, request.state.owner)
    output = a1111_options.output(a1111_options.decode(saved))
    max_images = request.app.state.settings.sd_max_images
    needed = extras.uses_models(up)
    if not needed:
        async with _EXTRAS_RUNNING:
            body = await asyncio.to_thread(a1111_extras.run_here, req, up, output, max_images=max_images)
        return Response(body, media_type="application/json")
    images = await asyncio.to_thread(a1111_extras.images_of, req, up, max_images=max_images)
    checkpoint = next((n for n, info in served.items() if set(needed) <= set(a1111.model_upscalers(info))), None)
    if checkpoint is None:
        raise ApiError(
            422,
            f"no one SD worker serves both upscalers {' and '.join(needed)}: name upscalers of one worker",
            code="invalid_request",
            param="upscaler_2",
        )
    job = extras.ExtrasJob(up, images, output)
    return await image_jobs.run_body(
        request, checkpoint, job.to_json(), len(images), endpoint, a1111_extras.worker_answer(req)
    )


@router.post("/extra-single-image", summary="Upscale an image (Lanczos, Nearest, ESRGAN models), as A1111's Extras")
async def extra_single_image(request: Request, body: a1111_extras.ExtrasSingleImageRequest) -> Response:
    return await _extras(request, body, "/sdapi/v1/extra-single-image")


@router.post("/extra-batch-images", summary="Upscale images (Lanczos, Nearest, ESRGAN models), as A1111's Extras")
async def extra_batch_images(request: Request, body: a1111_extras.ExtrasBatchImagesRequest) -> Response:
    return await _extras(request, body, "/sdapi/v1/extra-batch-images")


@router.post("/interrogate", summary="Caption an image: not offered here (501 naming the missing weights)")
async def interrogate(body: a1111_extras.InterrogateRequest) -> Response:
    raise await asyncio.to_thread(a1111_extras.interrogate, body)


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


@router.get("/upscalers", summary="Upscalers this server runs: filters, then the SD workers' ESRGAN-family models")
async def upscaler_list(request: Request) -> Response:
    found = _model_upscalers(await image_jobs.served_checkpoints(request.app.state.queue))
    return json_response(
        [
            {"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
            for name in upscalers.UPSCALERS
            if not name.startswith("Latent")
        ]
        + [
            {
                "name": name,
                "model_name": name,
                "model_path": u.get("filename"),
                "model_url": None,
                "scale": u.get("scale"),
            }
            for name, u in sorted(found.items())
        ]
    )


@router.get("/latent-upscale-modes", summary="Latent upscale modes of the hires fix")
async def latent_upscale_modes() -> Response:
    return json_response([{"name": name} for name in upscalers.UPSCALERS if name.startswith("Latent")])


async def _current_job(request: Request) -> tuple[str | None, dict[str, str] | None]:
    """The token's current generation (what progress, interrupt and skip act on) and its record."""
    queue = request.app.state.queue
    job_id = await image_state.current(queue.redis, request.state.owner)
    return job_id, await queue.record(job_id) if job_id else None


@router.get("/progress", summary="Progress of the token's current generation, with a live preview")
async def progress(request: Request, skip_current_image: bool = False) -> Response:
    redis = request.app.state.queue.redis
    job_id, record = await _current_job(request)
    # the preview before the progress: a step that comes in between then shows a step past the preview's,
    # never the preview of a step the progress has not reached yet
    preview = (
        await image_state.last_preview(redis, job_id)
        if job_id and record and record["state"] == "active" and not skip_current_image
        else None
    )
    last = await image_state.last_progress(redis, job_id) if record and job_id else None
    answer = a1111.progress(record, last, job_id, time.time())
    if last and answer["state"]["job_count"]:
        answer["current_image"] = preview
    return json_response(answer)


@router.post("/interrupt", summary="Stop the token's current generation (it answers 499)")
async def interrupt(request: Request) -> Response:
    job_id, record = await _current_job(request)
    if job_id and record and record["state"] not in TERMINAL_STATES:
        await request.app.state.queue.cancel(job_id)
    return json_response({})


@router.post("/skip", summary="Skip the image being made by the token's generation; its next ones still run")
async def skip(request: Request) -> Response:
    job_id, record = await _current_job(request)
    if job_id and record and record["state"] == "active":
        await request.app.state.queue.skip(job_id)
    return json_response(None)


@router.post("/png-info", summary="The A1111 infotext and other text chunks of a PNG")
async def png_info(body: a1111.PngInfoRequest) -> Response:
    try:  # off the event loop: base64 of a large body takes a while
        items = await asyncio.to_thread(codec.header_text, body.image)
    except codec.BadImage as exc:
        raise ApiError(400, f"image {exc}", code="invalid_image", param="image") from None
    text = items.pop("parameters", "")
    return json_response({"info": text, "items": items, "parameters": infotext.parse(text) if text else {}})
