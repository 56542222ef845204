"""CORS for a token-authenticated API: browsers (WebGL builds, web apps) may call it from any origin, or only
from the origins CORS_ORIGINS names; credentials mode only for named origins.

The token travels in a header (`Authorization`, `X-Api-Key`) that a browser never adds by itself, so a page
from another origin can use the API only with a token it already holds: answering its preflights gives it
nothing. The one credential a browser may add by itself is HTTP Basic (the A1111 routes accept the token as
its password), so `Access-Control-Allow-Credentials` is sent only to origins an operator named.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = b"GET, POST, DELETE, OPTIONS"
EXPOSED = b", ".join(
    [
        b"X-Request-ID",
        b"X-Job-ID",
        b"X-Worker-ID",
        b"X-RateLimit-Limit",
        b"X-RateLimit-Remaining",
        b"X-RateLimit-Reset",
        b"Retry-After",
    ]
)
MAX_AGE = b"600"


class CorsMiddleware:
    """Answers preflights (`OPTIONS` with `Access-Control-Request-Method`) before auth, echoing the allowed
    origin and the requested headers; adds the CORS headers to the answers of allowed origins. `origins`
    empty (or `*`): any origin, no credentials."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.origins = frozenset(o.encode() for o in origins if o != "*")
        self.credentials = bool(self.origins)

    def _allowed(self, origin: bytes) -> bool:
        return not self.origins or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = self._allowed(origin)
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(send, origin, allowed, headers.get(b"access-control-request-headers"))
            return
        if not allowed:
            await self.app(scope, receive, send)
            return
        extra = [*self._origin_headers(origin), (b"access-control-expose-headers", EXPOSED)]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _origin_headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        out = [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        if self.credentials:
            out.append((b"access-control-allow-credentials", b"true"))
        return out

    async def _preflight(self, send: Send, origin: bytes, allowed: bool, requested: bytes | None) -> None:
        if not allowed:
            body = b"origin not allowed: add it to CORS_ORIGINS"
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"text/plain"),
                        (b"content-length", str(len(body)).encode()),
                        (b"vary", b"Origin"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        headers = [
            *self._origin_headers(origin),
            (b"access-control-allow-methods", METHODS),
            (b"access-control-max-age", MAX_AGE),
            (b"content-length", b"0"),
        ]
        if requested:
            headers.append((b"access-control-allow-headers", requested))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
