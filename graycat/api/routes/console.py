"""The web console: its page and assets (no token needed: they hold no data), who the token is, and the live
overview's one Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Depends, Header, Request
from redis.exceptions import RedisError
from starlette.responses import Response

from graycat.api import console_assets
from graycat.api.access.auth import TokenFirstRoute, require_token
from graycat.api.access.limits import Caller
from graycat.api.access.tenant_gates import HeldStream
from graycat.api.answer import SSE_HEADERS
from graycat.api.console_feed import SNAPSHOT_S, ConsoleFeed, history, snapshot
from graycat.api.errors import ApiError
from graycat.api.routes import json_response

log = logging.getLogger(__name__)

pages = APIRouter(tags=["console"])
router = APIRouter(
    prefix="/console", tags=["console"], dependencies=[Depends(require_token)], route_class=TokenFirstRoute
)

READ_TIMEOUT_S = 2.0  # a snapshot not read by then: the consoles hear that Redis is unreachable
ASSET_CACHE = "public, max-age=31536000, immutable"  # for the URLs with the asset's hash, as the page names them


def page_response(if_none_match: str | None) -> Response:
    """The console's page, revalidated on each load."""
    return console_assets.page.response(
        if_none_match, "no-cache", {"Content-Security-Policy": console_assets.CSP, "Vary": "Accept"}
    )


@pages.get(
    "/console", summary="The web console (a page for browsers; no token needed to load it)", response_class=Response
)
async def console_page(if_none_match: str | None = Header(None)) -> Response:
    return page_response(if_none_match)


@pages.get("/console/assets/{name}", include_in_schema=False)
async def console_asset(name: str, v: str = "", if_none_match: str | None = Header(None)) -> Response:
    asset = console_assets.assets.get(name)
    if asset is None:
        raise ApiError(404, f"no console asset named '{name}'", code="not_found")
    return asset.response(if_none_match, ASSET_CACHE if f'"{v}"' == asset.etag else "no-cache")


@router.get("/session", summary="The token's rights, as the console shows them")
async def session(caller: Caller = Depends(require_token)) -> Response:
    return json_response(
        {
            "admin": caller.admin,
            "fingerprint": caller.owner,
            "models": caller.models,
            "rpm": caller.rpm,
            "concurrency": caller.concurrency,
            "daily_tokens": caller.daily_tokens,
            "daily_images": caller.daily_images,
        }
    )


# Left out of the OpenAPI schema: a stream without end, which schema-driven clients and fuzzers would wait on
# forever (docs/console.md describes it).
@router.get("/events", include_in_schema=False)
async def events(request: Request, caller: Caller = Depends(require_token)) -> Response:
    """The live overview as Server-Sent Events: a `snapshot` every second (pools, workers, queue waits, alerts,
    and for admin tokens hosts, GPUs and dead letters); the first also has `history`, the jobs each pool
    completed per minute in the last hour."""
    release = request.app.state.job_streams.acquire(caller.owner)  # each open stream is bounded per token
    return HeldStream(
        _snapshots(request, caller.admin), media_type="text/event-stream", headers=SSE_HEADERS, release=release
    )


async def _snapshots(request: Request, admin: bool) -> AsyncIterator[bytes]:
    queue = request.app.state.queue
    feed: ConsoleFeed = request.app.state.console_feed
    waits = request.app.state.metrics.waits
    first = True
    while True:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                data = snapshot(await feed.state(queue, waits), admin=admin)
                if first:
                    data["history"] = await history(queue, data["pools"])
                    first = False
            yield b"event: snapshot\ndata: %s\n\n" % orjson.dumps(data)
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("console events: %s", exc)
            reason = f"Redis unreachable: {exc or 'timeout'}"
            yield b"event: unavailable\ndata: %s\n\n" % orjson.dumps({"reason": reason})
        await asyncio.sleep(SNAPSHOT_S)
