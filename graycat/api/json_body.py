"""Request bodies sent without a JSON Content-Type read as JSON, as llama.cpp's, Ollama's and OpenAI's servers read
them: `curl -d '{...}'` sends `application/x-www-form-urlencoded`, some clients send no Content-Type at all."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from graycat.api.access.auth import TokenFirstRoute

# Content types that a JSON body often arrives under; multipart (file uploads) and JSON itself are left alone.
_READ_AS_JSON = frozenset({b"", b"application/x-www-form-urlencoded", b"text/plain"})
_JSON = (b"content-type", b"application/json")


def as_json(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with a missing or form/plain-text Content-Type replaced by application/json."""
    kept = [(name, value) for name, value in headers if name != b"content-type"]
    types = [value for name, value in headers if name == b"content-type"]
    if types and types[0].split(b";", 1)[0].strip().lower() not in _READ_AS_JSON:
        return headers
    return [*kept, _JSON]


class JsonBodyRoute(TokenFirstRoute):
    """A route whose POST body is JSON whatever Content-Type it came with (a body that is not JSON still gets
    a 422); the token is checked first, as on every route."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            scope["headers"] = as_json(scope["headers"])
        await super().handle(scope, receive, send)
