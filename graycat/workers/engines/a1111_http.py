"""Runs image jobs on an external Automatic1111 WebUI (started with `--api`) over its own `/sdapi/v1` API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp
import orjson
from yarl import URL

from graycat.images.extras import ExtrasJob
from graycat.images.params import GenerationParams
from graycat.images.samplers import resolve
from graycat.jobs import Job, error_body
from graycat.workers.engines.base import Emit

log = logging.getLogger(__name__)
PROGRESS_POLL_S = 0.25  # the WebUI's progress is read this often while a job runs
STOP_WAIT_S = 10.0  # after an interrupt, how long the WebUI may take to end the job before the next one starts


class A1111Error(ConnectionError):
    """The WebUI could not be reached or answered something unusable."""


def a1111_request(p: GenerationParams, title: str, controlnets: dict[str, str]) -> dict[str, Any]:
    """The WebUI's txt2img / img2img body for a job; `controlnets` maps the ControlNet names this worker
    announced to the WebUI's own (`name [hash]`)."""
    choice = resolve(p.sampler, p.schedule)
    body: dict[str, Any] = {
        "prompt": p.prompt,
        "negative_prompt": p.negative_prompt,
        "seed": p.seed,
        "subseed": p.subseed,
        "subseed_strength": p.subseed_strength,
        "sampler_name": choice.sampler.name,
        "scheduler": choice.schedule.name,
        "steps": p.steps,
        "cfg_scale": p.cfg_scale,
        "width": p.width,
        "height": p.height,
        "batch_size": p.batch_size,
        "n_iter": p.n_iter,
        "tiling": p.tiling,
        "send_images": p.send_images,
        "save_images": False,
        "override_settings": {
            "sd_model_checkpoint": title,
            "sd_vae": p.vae or "Automatic",
            "CLIP_stop_at_last_layers": p.clip_skip,
            "samples_format": p.samples_format,
            "jpeg_quality": p.jpeg_quality,
            "webp_lossless": p.webp_lossless,
            "enable_pnginfo": p.enable_pnginfo,
            "eta_noise_seed_delta": p.eta_noise_seed_delta,
        },
        "override_settings_restore_afterwards": False,
    }  # keep the checkpoint loaded for the next job
    if p.eta is not None:
        body["eta"] = p.eta
    if p.mode == "img2img":
        body.update(
            init_images=p.init_images[:1],
            denoising_strength=p.denoising_strength,
            resize_mode=p.resize_mode,
            mask=p.mask,
            mask_blur=p.mask_blur,
            inpainting_fill=p.inpainting_fill,
            inpaint_full_res=p.inpaint_full_res,
            inpaint_full_res_padding=p.inpaint_full_res_padding,
            inpainting_mask_invert=int(p.inpainting_mask_invert),
        )
    if p.outpaint:  # the job's size includes the border; the WebUI's script grows the canvas itself
        left, up, right, down = p.outpaint
        body.update(
            width=p.width - left - right,
            height=p.height - up - down,
            script_name="Poor man's outpainting",
            script_args=[
                max(p.outpaint),
                p.mask_blur,
                p.inpainting_fill,
                [side for side, pixels in zip(("left", "up", "right", "down"), p.outpaint, strict=True) if pixels],
            ],
        )
    if p.sd_upscale is not None:  # the WebUI's script takes the upscaler's index; None, Lanczos, Nearest lead
        tiled = p.sd_upscale
        body.update(
            script_name="SD upscale",
            script_args=["", tiled.overlap, ("None", "Lanczos", "Nearest").index(tiled.upscaler), tiled.scale],
        )
    if p.hires is not None:
        h = p.hires
        body.update(
            enable_hr=True,
            hr_resize_x=h.width,
            hr_resize_y=h.height,
            hr_upscaler=h.upscaler,
            hr_second_pass_steps=h.steps,
            denoising_strength=h.denoising_strength,
            hr_prompt=h.prompt,
            hr_negative_prompt=h.negative_prompt,
        )
        if h.sampler:
            body.update(hr_sampler_name=h.sampler, hr_scheduler=h.schedule)
    if p.refiner is not None:  # A1111 finds a checkpoint by its model name too
        body.update(refiner_checkpoint=p.refiner, refiner_switch_at=p.refiner_switch_at)
    if p.controlnets:
        body["alwayson_scripts"] = {
            "controlnet": {
                "args": [
                    {
                        "enabled": True,
                        "module": u.module,
                        "model": controlnets.get(u.model, u.model),
                        "image": u.image,
                        "weight": u.weight,
                        "guidance_start": u.guidance_start,
                        "guidance_end": u.guidance_end,
                        "threshold_a": u.threshold_a,
                        "threshold_b": u.threshold_b,
                    }
                    for u in p.controlnets
                ]
            }
        }
    return body


class A1111HttpEngine:
    """An Automatic1111 WebUI given by its base URL (`http://user:password@host:7860` for `--api-auth`): its
    checkpoints, LoRAs, VAEs and ControlNet models are served as this worker's. The WebUI runs one generation
    at a time and its progress is global: give each worker a WebUI of its own."""

    kind = "sd"
    slots = 1

    def __init__(self, url: str, *, previews: bool = True) -> None:
        base = URL(url)
        self.auth = aiohttp.BasicAuth(base.user or "", base.password or "") if base.user or base.password else None
        self.base = str(base.with_user(None)).rstrip("/")
        self.previews = previews
        self._session: aiohttp.ClientSession | None = None
        self._models: dict[str, dict[str, Any]] = {}
        self._controlnets: dict[str, str] = {}
        self._running: str | None = None
        self._served = 0
        self._figures = {"images_total": 0, "diffusion_seconds_total": 0.0}  # the WebUI tells no step counts
        self._background: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auth=self.auth, timeout=aiohttp.ClientTimeout(total=None, connect=10))
        await self._read_models()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        assert self._session is not None
        try:
            async with self._session.request(method, self.base + path, **kw) as resp:
                body = await resp.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise A1111Error(
                f"cannot reach the A1111 WebUI at {self.base} ({exc or type(exc).__name__}); is it running with --api?"
            ) from None
        if resp.status >= 400:
            raise A1111Error(f"the A1111 WebUI answered {method} {path} with {resp.status}: {body[:300]!r}")
        return orjson.loads(body) if body else None

    async def _read_models(self) -> None:
        try:
            await self._read_lists()
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise A1111Error(
                f"the A1111 WebUI at {self.base} listed its models in an unexpected shape ({exc!r})"
            ) from None

    async def _read_lists(self) -> None:
        checkpoints = await self._call("GET", "/sdapi/v1/sd-models")
        loras = sorted(str(x["name"]) for x in await self._call("GET", "/sdapi/v1/loras"))
        vaes = sorted(str(x["model_name"]) for x in await self._call("GET", "/sdapi/v1/sd-vae"))
        try:  # the ControlNet extension's route; absent without it
            listed = (await self._call("GET", "/controlnet/model_list")).get("model_list", [])
        except A1111Error:
            listed = []
        self._controlnets = {str(m).rsplit(" [", 1)[0]: str(m) for m in listed if str(m) != "None"}
        self._models = {
            str(c["model_name"]): {
                "kind": "sd",
                **{k: c.get(k) for k in ("title", "model_name", "hash", "sha256", "filename", "config")},
                "slots": self.slots,
                "loras": loras,
                "vaes": vaes,
                "controlnets": sorted(self._controlnets),
            }
            for c in checkpoints
        }

    async def rescan(self) -> None:
        """Have the WebUI rescan its folders (A1111's refresh routes), then read its lists again."""
        for what in ("checkpoints", "loras", "vae"):
            await self._call("POST", f"/sdapi/v1/refresh-{what}")
        await self._read_models()

    def models(self) -> dict[str, dict[str, Any]]:
        return self._models

    def stats(self) -> dict[str, Any]:
        return {
            "served": self._served,
            "active": int(self._running is not None),
            "url": self.base,
            "images": dict(self._figures),
        }

    def skip(self, job_id: str) -> None:
        """Relay A1111's skip to the WebUI (which returns the skipped image half done, as A1111 does)."""
        if job_id == self._running:
            self._soon(self._call("POST", "/sdapi/v1/skip"))

    def _soon(self, call: Any) -> None:
        task = asyncio.get_running_loop().create_task(call)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        """POST the job to the WebUI, turning its progress into progress events; a cancelled task interrupts
        the WebUI and waits for it to stop."""
        values = orjson.loads(job.body)
        if values.get("mode") == ExtrasJob.MODE:  # extras ride on a checkpoint's pool (routes/a1111.py)
            return 501, error_body(
                501, "upscaling (extras) is not relayed to a WebUI: serve this checkpoint with `graycat worker sd`"
            )
        params = GenerationParams.from_dict(values)
        model = self._models.get(params.checkpoint)
        if model is None:
            return 404, error_body(404, f"checkpoint '{params.checkpoint}' not served by this worker")
        route = "/sdapi/v1/img2img" if params.mode == "img2img" else "/sdapi/v1/txt2img"
        request = asyncio.ensure_future(
            self._post(route, a1111_request(params, str(model["title"]), self._controlnets))
        )
        self._running = job.id
        began = time.monotonic()
        try:
            await self._relay_progress(request, emit)
            status, body = await request
        except BaseException:  # cancelled, or the WebUI failed: stop it, so that the next job starts clean
            if not request.done():
                with contextlib.suppress(A1111Error, TimeoutError):
                    async with asyncio.timeout(STOP_WAIT_S):
                        await self._call("POST", "/sdapi/v1/interrupt")
                        await asyncio.wait({request})  # the WebUI ends the job at its next step
                request.cancel()
            raise
        finally:
            self._running = None
            self._figures["diffusion_seconds_total"] += time.monotonic() - began
        if status != 200:
            code = status if status < 500 else 502
            return code, error_body(code, f"the A1111 WebUI answered {status}: {body[:500].decode(errors='replace')}")
        answer = orjson.loads(body)
        self._served += 1
        self._figures["images_total"] += len(answer.get("images") or [])
        return 200, orjson.dumps({"images": answer.get("images") or [], "info": answer.get("info") or "{}"})

    async def _post(self, route: str, body: dict[str, Any]) -> tuple[int, bytes]:
        assert self._session is not None
        try:
            async with self._session.post(self.base + route, json=body) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise A1111Error(f"the A1111 WebUI at {self.base} failed: {exc or type(exc).__name__}") from None

    async def _relay_progress(self, request: asyncio.Future[Any], emit: Emit) -> None:
        """Until the request is answered, read the WebUI's progress and emit each new step."""
        last: tuple[int, int] | None = None
        params = {"skip_current_image": "false" if self.previews else "true"}
        while not request.done():
            await asyncio.wait({request}, timeout=PROGRESS_POLL_S)
            if request.done():
                return
            try:
                progress = await self._call("GET", "/sdapi/v1/progress", params=params)
                state = progress.get("state") or {}
                step, steps = int(state.get("sampling_step") or 0), int(state.get("sampling_steps") or 0)
                job_no, job_count = int(state.get("job_no") or 0), max(1, int(state.get("job_count") or 1))
            except (A1111Error, ValueError, TypeError, AttributeError) as exc:
                log.warning("reading the WebUI's progress failed: %s", exc)
                continue
            if steps <= 0 or step <= 0 or (job_no, step) == last:
                continue
            last = (job_no, step)
            event: dict[str, Any] = {
                "job_no": min(job_no, job_count - 1),
                "job_count": job_count,
                "step": min(step, steps),
                "steps": steps,
            }
            if progress.get("current_image"):
                event["preview"] = progress["current_image"]
            emit(orjson.dumps(event))

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._session is not None:
            await self._session.close()
