"""What the image routes share: the checkpoints live SD workers serve, picking one, running a generation job."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.responses import Response

from graycat.api.answer import run_job
from graycat.api.dialects import JobSpec, Renderer
from graycat.api.dialects.a1111 import MAX_SEED, Limits
from graycat.api.errors import ApiError
from graycat.images import checkpoints
from graycat.images.params import GenerationParams
from graycat.queue import image_state
from graycat.queue import refresh as workers_refresh
from graycat.queue.client import JobQueue

KIND = "sd"


async def served_checkpoints(queue: JobQueue) -> dict[str, dict[str, Any]]:
    """model_name -> announced info of every checkpoint a live SD worker serves."""
    served = await queue.served_models(KIND, fresh=False)
    return {name: info for name, info in served.items() if info.get("kind") == KIND}


async def checkpoint(request: Request, wanted: str | None, param: str) -> str:
    """The checkpoint a request means: `wanted` (any name A1111 accepts), else the token's chosen one, else
    SD_DEFAULT_MODEL, else the first served. 404 for an unknown name, 503 when no SD worker is alive."""
    served = await served_checkpoints(request.app.state.queue)
    settings = request.app.state.settings
    if wanted:
        found = checkpoints.find(wanted, served)
        if found is None:
            raise ApiError(
                404,
                f"checkpoint '{wanted}' not found; available: {', '.join(served) or 'none'}",
                code="model_not_found",
                param=param,
            )
        return found
    if not served:
        raise ApiError(
            503,
            "no image worker is running: start one with `graycat worker sd --models-dir DIR`",
            code="no_worker",
            headers={"Retry-After": "5"},
        )
    chosen = (await image_state.options(request.app.state.queue.redis, request.state.owner)).get("sd_model_checkpoint")
    for name in (chosen, settings.sd_default_model):
        if name and (found := checkpoints.find(name, served)):
            return found
    return next(iter(served))


async def loaded_checkpoints(queue: JobQueue) -> set[str]:
    """The checkpoints live diffusers SD workers hold in memory (as of their last heartbeat)."""
    return {
        str(name)
        for w in await queue.live_workers()
        if w.get("kind") == KIND
        for name in (w.get("engine") or {}).get("loaded_models") or []
    }


def limits(request: Request) -> Limits:
    s = request.app.state.settings
    return Limits(s.sd_max_size, s.sd_max_steps, s.sd_max_images)


def random_seed() -> int:
    return secrets.randbelow(MAX_SEED)


async def run(request: Request, params: GenerationParams, endpoint: str, reshape: Callable[[bytes], bytes]) -> Response:
    """Enqueue the generation on its checkpoint's pool and answer with the reshaped result. The job becomes the
    token's current one, which /sdapi/v1/progress and /sdapi/v1/interrupt act on."""
    images = params.batch_size * params.n_iter
    return await run_body(request, params.checkpoint, params.to_json(), images, endpoint, reshape)


async def run_body(
    request: Request, checkpoint: str, body: bytes, images: int, endpoint: str, reshape: Callable[[bytes], bytes]
) -> Response:
    """Enqueue an image job (a generation, or an extras upscale) on `checkpoint`'s pool and answer with the
    reshaped result; it becomes the token's current job."""
    settings = request.app.state.settings
    job_id = uuid.uuid4().hex
    ttl = int(settings.queue_timeout_for(KIND) + settings.job_timeout_for(KIND)) + 60
    await image_state.set_current(request.app.state.queue.redis, request.state.owner, job_id, ttl)
    spec = JobSpec(endpoint, False, checkpoint, None, deterministic=True, images=images)
    return await run_job(request, spec, Renderer(answer=reshape), kind=KIND, body=body, job_id=job_id)


async def refresh(request: Request) -> None:
    """Have every live SD worker read its models folder again, and return once each has announced what it found
    (or has stopped); a 504 past SD_REFRESH_TIMEOUT names the workers still at it, a 502 those whose rescan
    failed."""
    queue: JobQueue = request.app.state.queue
    timeout = request.app.state.settings.sd_refresh_timeout
    done = await workers_refresh.refresh(queue.redis, KIND, timeout)
    if done.late:
        raise ApiError(
            504,
            f"SD workers {', '.join(done.late)} did not finish reading their models folder within "
            f"{timeout:g} s (SD_REFRESH_TIMEOUT); they announce what they find when done",
            code="refresh_timeout",
        )
    await queue.models(fresh=True)
    if done.failed:
        raise ApiError(
            502,
            "SD workers could not read their models again (they keep the models they had): " + "; ".join(done.failed),
            code="refresh_failed",
        )
