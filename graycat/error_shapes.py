"""The error bodies of every API the gateway speaks, each shape written once: the api's error responses, the
events ending a failed stream, a job's own error (llama.cpp's shape, which the engines answer and every
dialect reads) and the worker's /metrics refusal all build theirs here. No graycat imports: the dialects,
`jobs` and `api.errors` all import it."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "unavailable_error",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    """The `type` of an error answered with `status`."""
    return TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


class ErrorShape(Protocol):
    """An API's error response body."""

    def __call__(
        self, status: int, message: str, code: str | None = None, param: str | None = None, details: Any = None
    ) -> bytes: ...


def _with_details(fields: dict[str, Any], details: Any) -> dict[str, Any]:
    if details is not None:
        fields["details"] = details
    return fields


def llamacpp_error(status: int, message: str, kind: str, details: Any = None) -> bytes:
    """llama.cpp's shape, an integer `code`: {"error": {"code", "message", "type"}}. A job's error body too."""
    return orjson.dumps({"error": _with_details({"code": status, "message": message, "type": kind}, details)})


def openai_error(message: str, kind: str, param: str | None, code: str | int | None, details: Any = None) -> bytes:
    """OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    fields = {"message": message, "type": kind, "param": param, "code": code}
    return orjson.dumps({"error": _with_details(fields, details)})


def anthropic_error(kind: str, message: str, **extra: Any) -> bytes:
    """Anthropic's shape: {"type": "error", "error": {"type", "message", ...}}."""
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message, **extra}})


def ollama_error(message: str) -> bytes:
    """Ollama's shape: {"error": message}."""
    return orjson.dumps({"error": message})


def llamacpp(
    status: int, message: str, code: str | None = None, param: str | None = None, details: Any = None
) -> bytes:
    return llamacpp_error(status, message, error_type(status), details)


def openai(status: int, message: str, code: str | None = None, param: str | None = None, details: Any = None) -> bytes:
    return openai_error(message, error_type(status), param, code, details)


def anthropic(
    status: int, message: str, code: str | None = None, param: str | None = None, details: Any = None
) -> bytes:
    extra = {"code": code} if details is None else {"code": code, "details": details}
    return anthropic_error(error_type(status), message, **extra)


def ollama(status: int, message: str, code: str | None = None, param: str | None = None, details: Any = None) -> bytes:
    return ollama_error(message)


def a1111(status: int, message: str, code: str | None = None, param: str | None = None, details: Any = None) -> bytes:
    """A1111's (FastAPI's) shape: `detail` is the message."""
    fields = {"error": error_type(status), "detail": message, "body": None, "errors": message, "code": code}
    return orjson.dumps(_with_details({**fields, "param": param}, details))


BY_DIALECT: dict[str | None, ErrorShape] = {
    "openai": openai,
    "anthropic": anthropic,
    "ollama": ollama,
    "a1111": a1111,
}
"""The error response of each dialect of graycat/api/dialects/paths.py; llama.cpp's for the others."""


def for_dialect(dialect: str | None) -> ErrorShape:
    return BY_DIALECT.get(dialect, llamacpp)
