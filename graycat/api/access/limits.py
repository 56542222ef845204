"""Per-token admission, shared by every API replica through Redis: requests per minute, requests in flight,
managed tokens' revocation, expiry, model scope and daily quotas."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import Request
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graycat.api.errors import ApiError
from graycat.queue import admission
from graycat.queue.client import JobQueue
from graycat.queue.scripts import Admission
from graycat.tokens import TokenInfo, fingerprint, token_hash

log = logging.getLogger(__name__)
# Status polls clients send every half second while a job runs (A1111's progress, a job's state), the watching
# or cancelling of a job, and the console's live overview: they are authenticated, but neither use up the
# per-minute allowance nor take a place in flight (the generation they watch holds one already).
POLLS = frozenset(
    {
        ("GET", "/sdapi/v1/progress"),
        ("GET", "/jobs/{job_id}"),
        ("GET", "/jobs/{job_id}/events"),
        ("DELETE", "/jobs/{job_id}"),
        ("GET", "/console/events"),
    }
)
STATE_KEY = "graycat_caller"  # where the admitted caller lives in the ASGI scope's state
_REFUSED = {
    Admission.UNKNOWN: ("invalid API token", "invalid_api_key"),
    Admission.REVOKED: ("this API token was revoked", "revoked_api_key"),
    Admission.EXPIRED: ("this API token has expired", "expired_api_key"),
}


@dataclass
class Caller:
    """The token behind a request, as admitted: its fingerprint, rights and the limits that applied."""

    owner: str
    admin: bool
    request_id: str
    models: list[str] = field(default_factory=list)  # empty: every model
    daily_tokens: int = 0
    daily_images: int = 0
    rpm: int = 0
    remaining: int = 0
    concurrency: int = 0
    reset: int = 0  # seconds until the oldest request of the last minute leaves the window
    ticket: str = ""  # this admission's entry in the token's windows (unique, unlike a client's request id)

    def headers(self) -> list[tuple[bytes, bytes]]:
        if not self.rpm:
            return []
        return [
            (b"x-ratelimit-limit", str(self.rpm).encode()),
            (b"x-ratelimit-remaining", str(max(self.remaining, 0)).encode()),
            (b"x-ratelimit-reset", str(max(self.reset, 1)).encode()),
        ]


def today() -> str:
    """The UTC date, as the daily usage keys name it (formatted once a day, not once a request)."""
    return _date(int(time.time() // 86400))


@functools.lru_cache(maxsize=1)
def _date(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%Y-%m-%d")


async def admit(request: Request, secret: str, *, static: bool, admin: bool, challenge: dict[str, str]) -> Caller:
    """Admit a request of the token `secret` (one Redis round trip), or raise the 401 / 429 it gets."""
    state = request.app.state
    queue: JobQueue = state.queue
    settings = state.settings
    owner = fingerprint(secret)
    now = time.time()
    request_id = request.scope.get("request_id") or f"{owner}-{now}"
    if static and not settings.rate_limit_rpm and not settings.rate_limit_concurrency:
        caller = Caller(owner, admin, request_id)  # nothing to check in Redis: no round trip
        request.scope.setdefault("state", {})[STATE_KEY] = caller
        return caller
    ticket = f"{request_id}:{uuid.uuid4().hex[:12]}"
    reply = await admission.admit(
        queue.writer,
        token_hash(secret),
        owner,
        managed=not static,
        rpm=settings.rate_limit_rpm,
        concurrency=settings.rate_limit_concurrency,
        now=now,
        ticket=ticket,
        oldest=now - settings.job_timeout - settings.queue_timeout,
        ttl=settings.record_ttl(),
        counted=not (poll := _is_poll(request)),
    )
    verdict, rpm, remaining, reset, record = reply.verdict, reply.rpm, reply.remaining, reply.reset, reply.record
    concurrency = 0 if poll else reply.concurrency  # nothing to take out of the in-flight set at the end
    if verdict in _REFUSED:
        message, code = _REFUSED[verdict]
        raise ApiError(401, message, code=code, headers=challenge)
    info = TokenInfo.from_redis(dict(zip(record[::2], record[1::2], strict=True))) if record else None
    caller = Caller(
        owner,
        admin or bool(info and info.admin),
        request_id,
        info.models if info else [],
        info.daily_tokens if info else 0,
        info.daily_images if info else 0,
        rpm,
        remaining,
        concurrency,
        reset,
        ticket,
    )
    if verdict is Admission.OVER_RPM:
        wait = str(max(reset, 1))
        raise ApiError(
            429,
            f"rate limit reached: {rpm} requests per minute for this token; retry in {wait} s",
            code="rate_limit_exceeded",
            headers={"Retry-After": wait, **_headers(caller)},
        )
    if verdict is Admission.OVER_CONCURRENCY:
        raise ApiError(
            429,
            f"this token already has {concurrency} requests or jobs in flight (its limit); retry when one ends",
            code="too_many_concurrent_requests",
            headers={"Retry-After": "1"},
        )
    request.scope.setdefault("state", {})[STATE_KEY] = caller
    return caller


def _is_poll(request: Request) -> bool:
    route = request.scope.get("route")
    return (request.method, getattr(route, "path", "")) in POLLS


def _headers(caller: Caller) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in caller.headers()}


async def check_job(request: Request, model: str, kind: str, prompts: int = 1) -> None:
    """Whether the caller's token may queue a job of `kind` on `model` with `prompts` prompts: 403 when it is
    limited to other models, 400 for more prompts than MAX_PROMPTS (each takes an engine slot). Its daily
    quota is checked by the reservation (graycat/api/access/quotas.py)."""
    most = request.app.state.settings.max_prompts
    if prompts > most:
        raise ApiError(
            400,
            f"this request asks for {prompts} completions (prompts x n); at most {most} are taken "
            "per request (MAX_PROMPTS)",
            code="too_many_prompts",
            param="prompt",
        )
    caller: Caller | None = request.scope.get("state", {}).get(STATE_KEY)
    if caller is not None and caller.models and model not in caller.models:
        raise ApiError(
            403,
            f"this token may not use model '{model}'; it may use: {', '.join(caller.models)}",
            code="model_not_allowed",
            param="model",
        )


class LimitsMiddleware:
    """Adds the rate-limit headers to an admitted request's response and, once the response is over (streams
    included), takes the request out of its token's in-flight set and counts it in the token's daily usage."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_with_limits(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if (caller := scope.get("state", {}).get(STATE_KEY)) is not None:
                    message["headers"] = [*message.get("headers", []), *caller.headers()]
            await send(message)

        try:
            await self.app(scope, receive, send_with_limits)
        finally:
            caller = scope.get("state", {}).get(STATE_KEY)
            if caller is not None:
                _release(scope["app"].state.queue, caller, status)


def _release(queue: JobQueue, caller: Caller, status: int) -> None:
    queue.count_request(caller.owner, today(), failed=status >= 400)
    if not caller.concurrency:
        return
    try:
        admission.free(queue.writer, caller.owner, caller.ticket)
    except (RedisError, OSError) as exc:  # the in-flight entry expires with the request's deadline
        log.warning("could not release a request of token %s: %s", caller.owner, exc)
