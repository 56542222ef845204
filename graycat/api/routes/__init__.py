"""Thin HTTP handlers, one module per dialect."""

from __future__ import annotations

import orjson
from starlette.responses import Response


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON body serialised once with orjson (no FastAPI encoding pass)."""
    return Response(orjson.dumps(data), status, headers=headers, media_type="application/json")
