"""Hardening on every response: security headers and a body size cap (CORS: cors.py)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graycat.api.errors import BodyTooLarge, error_body

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-site"),
]


class HardeningMiddleware:
    """Adds the security headers, and answers 413 in the client's dialect to a body over `max_body_mb`: at once
    by its Content-Length, or, for a chunked body, as soon as the bytes the app reads pass the cap (the body is
    never read here: a route refuses a wrong token before reading it)."""

    def __init__(self, app: ASGIApp, max_body_mb: float) -> None:
        self.app = app
        self.max_body_mb = max_body_mb
        self.max_body = int(max_body_mb * (1 << 20))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
                break
        if length is not None:
            if length.isdigit() and int(length) > self.max_body:
                await self._too_large(scope, send_hardened)
                return
            await self.app(scope, receive, send_hardened)
            return
        size = 0

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_body:
                    raise BodyTooLarge(too_large(self.max_body_mb))
            return message

        await self.app(scope, counted, send_hardened)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        body = error_body(scope["path"], 413, too_large(self.max_body_mb), "request_too_large")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def too_large(max_body_mb: float) -> str:
    return f"the request body is over the limit of {max_body_mb:g} MB (MAX_BODY_MB)"
