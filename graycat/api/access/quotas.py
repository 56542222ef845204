"""Daily quotas as reservations: before a job is queued it reserves the most it may use of its token's daily
quota (generated tokens, or images), and is refused with 429 when that does not fit; when it ends, the worker
reports what it made, which is counted while the reservation is released, in one atomic step in Redis
(scripts.FINISH; a job that never ran releases it in CANCEL or EXPIRE_WAITING)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
from fastapi import Request

from graycat.api.access.limits import STATE_KEY, Caller, today
from graycat.api.dialects import JobSpec
from graycat.api.errors import ApiError
from graycat.jobs import TEXT_GENERATION, Job, engine_cap
from graycat.queue import reservations
from graycat.queue.client import JobQueue

NO_CONTEXT = 4096  # tokens per completion reserved for a model whose context size is not announced
RETRY_SOON_S = 5  # Retry-After when the quota is held by jobs in progress (their reservations come back)


@dataclass(frozen=True, slots=True)
class Hold:
    """A job's reservation: the member `<job id>:<amount>` of the token's reservations of one field."""

    key: str
    member: str

    def fields(self) -> tuple[str, ...]:
        """The job record fields that name it (scripts.RELEASE_HOLDS)."""
        return ("rsv_key", self.key, "rsv", self.member)


async def reserve(request: Request, job: Job, spec: JobSpec, kind: str) -> Hold | None:
    """Reserve what `job` may use of its token's daily quota, or raise 429 when that does not fit.

    Images: batch_size x n_iter. Text: each of the job's prompts (completions) reserves its cap, at most the
    model's context; a request without a cap reserves as much as is left (at most the context per prompt), and
    its cap (n_predict) is set to what it got. Either way the engine's cap is set to the reservation, so the
    job cannot make more than it reserved. None when the token has no quota for this kind of job."""
    caller = cast(Caller | None, request.scope.get("state", {}).get(STATE_KEY))
    if caller is None:
        return None
    what, limit = ("images", caller.daily_images) if kind == "sd" else ("completion_tokens", caller.daily_tokens)
    if not limit or kind not in ("sd", "llm") or (kind == "llm" and job.endpoint not in TEXT_GENERATION):
        return None
    queue: JobQueue = request.app.state.queue
    body: dict[str, Any] | None = None
    if kind == "sd":
        want, unit = max(spec.images, 1), 0
    else:
        body = orjson.loads(job.body)
        if not isinstance(body, dict):  # the dialects take objects only
            raise ApiError(400, "the request body must be a JSON object", code="invalid_request")
        context = int((await queue.models()).get(job.model, {}).get("n_ctx") or NO_CONTEXT)
        cap = engine_cap(body)
        # n_predict 0 still makes one token
        want, unit = (job.slots * context, job.slots) if cap is None else (job.slots * max(1, min(cap, context)), 0)
    settings = request.app.state.settings
    lifetime = settings.queue_timeout_for(kind) + settings.job_timeout_for(kind) + 60
    now = time.time()
    key, granted, used, held = await reservations.reserve(
        queue.writer,
        caller.owner,
        what,
        day=today(),
        limit=limit,
        want=want,
        unit=unit,
        now=now,
        lifetime=lifetime,
        job_id=job.id,
    )
    if not granted:
        raise _refusal(what, limit, used, held, want if not unit else unit, job.slots)
    if body is not None:
        body["n_predict"] = granted // job.slots
        job.body = orjson.dumps(body)
    return Hold(key, f"{job.id}:{granted}")


async def release(queue: JobQueue, hold: Hold | None) -> None:
    """Give back the reservation of a job that was not queued."""
    if hold is not None:
        await reservations.release(queue.writer, hold.key, hold.member)


def _refusal(what: str, limit: int, used: int, held: int, least: int, prompts: int) -> ApiError:
    noun = "images" if what == "images" else "generated tokens"
    left = max(0, limit - used - held)
    asked = f"{least} {noun}" + (f" ({prompts} prompts)" if prompts > 1 and what != "images" else "")
    pending = f", {held} reserved by requests in progress" if held else ""
    retry = RETRY_SOON_S if held else 86400 - int(time.time()) % 86400
    return ApiError(
        429,
        f"daily quota: this request needs {asked} but {left} of this token's {limit} {noun} are "
        f"left today (UTC; {used} used{pending})",
        code="quota_exceeded",
        headers={"Retry-After": str(retry)},
    )
