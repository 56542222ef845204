"""ASGI middleware on every request: the request id, the request's metrics and its access log line; `//` in
paths collapsed."""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graycat.jobs import new_id
from graycat.metrics import UNMATCHED, ApiMetrics

_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("graycat.access")


class RequestMiddleware:
    """Echo a sane incoming `X-Request-ID`, or make one, and expose it to handlers as scope['request_id'];
    count and time the request by its route template; log one line when it ends (never its body)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        rid = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _VALID_ID.match(value):
                rid = value
                break
        if not rid:
            rid = new_id().encode()
        scope["request_id"] = rid.decode()
        status = 500  # what the client gets when the app fails before answering
        first_byte = 0.0
        job_id = ""

        async def send_with_id(message: Message) -> None:
            nonlocal status, first_byte, job_id
            if message["type"] == "http.response.start":
                status = message["status"]
                first_byte = time.perf_counter() - began
                headers = message.get("headers", [])
                for name, value in headers:
                    if name == b"x-job-id":
                        job_id = value.decode()
                message["headers"] = [*headers, (b"x-request-id", rid)]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            total = time.perf_counter() - began
            route = _route_name(scope)
            self.metrics.request_done(route, status, first_byte or total, total)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    route,
                    status,
                    extra={
                        "request_id": scope["request_id"],
                        "job_id": job_id,
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(total * 1000, 2),
                        "first_byte_ms": round((first_byte or total) * 1000, 2),
                    },
                )


def _route_name(scope: Scope) -> str:
    """The template of the route that served the request: FastAPI's own routes put themselves in the scope, plain
    Starlette ones (/docs, /redoc, /openapi.json) only their endpoint."""
    if (route := scope.get("route")) is not None:
        return str(route.path)
    if (endpoint := scope.get("endpoint")) is not None:
        for candidate in scope["app"].router.routes:
            if getattr(candidate, "endpoint", None) is endpoint:
                return str(candidate.path)
    return UNMATCHED


_SLASHES = re.compile(r"//+")


class CollapseSlashesMiddleware:
    """Treat `//` in a path as `/`: A1111 clients join a base URL ending in `/` with `/sdapi/...`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            path = _SLASHES.sub("/", scope["path"])
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)
