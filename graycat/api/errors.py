"""Structured errors: every failure is a JSON body in the client's dialect, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from graycat.api.dialects import BadField
from graycat.api.dialects.paths import path_dialect
from graycat.error_shapes import for_dialect
from graycat.queue.client import QueueFull

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered to the client as is."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}


class BodyTooLarge(HTTPException):
    """A chunked body passed MAX_BODY_MB while being read (an HTTPException: FastAPI lets it through as is)."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message, headers={"Connection": "close"})


def error_body(
    path: str, status: int, message: str, code: str | None = None, param: str | None = None, details: Any = None
) -> bytes:
    """The error body in the shape of the API `path` belongs to (graycat/error_shapes.py): OpenAI's on /v1
    routes, Anthropic's on /v1/messages, Ollama's on /api, A1111's on /sdapi, llama.cpp's everywhere else."""
    return for_dialect(path_dialect(path))(status, message, code, param, details)


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        error_body(request.url.path, status, message, code, param, details),
        status,
        headers=headers,
        media_type="application/json",
    )


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    where = ".".join(loc)
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    if first.get("type") == "model_attributes_type" and not loc:
        return "the request body must be a JSON object, sent with Content-Type: application/json", None
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return (f"{where}: {msg}" if where else msg), (where or None)


_PEERS_ANSWER_400 = frozenset({"OpenAI", "llama.cpp", "Ollama", "Anthropic"})


def validation_status(request: Request) -> int:
    """400 for an invalid body on the routes of peers that answer 400 (llama.cpp, OpenAI, Anthropic, Ollama);
    422, as FastAPI answers, on A1111's routes (a FastAPI server itself) and the gateway's own."""
    tags = getattr(request.scope.get("route"), "tags", None) or ()
    return 400 if _PEERS_ANSWER_400.intersection(tags) else 422


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into a structured answer."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(request, exc.status, exc.message, code=exc.code, param=exc.param, headers=exc.headers)

    @app.exception_handler(BadField)
    async def _bad_field(request: Request, exc: BadField) -> Response:
        return error_response(request, 400, str(exc), code=exc.code, param=exc.param)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        message, param = _validation_message(errors)
        return error_response(
            request, validation_status(request), message, code="invalid_request", param=param, details=errors
        )

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
        return error_response(request, 413, str(exc.detail), code="request_too_large", headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return error_response(request, exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(QueueFull)
    async def _queue_full(request: Request, exc: QueueFull) -> Response:
        whose = "of yours are" if exc.per_token else "are"
        request.app.state.metrics.rejected.labels("token_limit" if exc.per_token else "pool_full").inc()
        return error_response(
            request,
            503,
            f"the queue is full ({exc.waiting} requests {whose} waiting); retry in {exc.retry_after} s",
            code="queue_full",
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(RedisError)
    async def _redis_down(request: Request, exc: RedisError) -> Response:
        log.warning("Redis error on %s: %s", request.url.path, exc)
        return error_response(
            request,
            503,
            "the job queue (Redis) is unreachable; retry shortly",
            code="queue_unavailable",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request, 500, "internal error; the request id identifies it in the logs")
