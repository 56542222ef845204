"""`/metrics`: Prometheus exposition of this api process and of the cluster it sees in Redis.

With METRICS_TOKEN set it needs `Authorization: Bearer <METRICS_TOKEN>`, a token separate from the API tokens
so a scraper cannot generate text; unset, it answers only loopback and private-network addresses (a scraper on
the same host or network), never a public one. The shipped nginx configuration does not serve it at all.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from redis.exceptions import RedisError
from starlette.responses import Response

from graycat.api.cluster_metrics import ClusterCollector, ClusterSnapshot, read_snapshot
from graycat.api.errors import ApiError
from graycat.metrics import metrics_allowed

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

REDIS_READ_TIMEOUT_S = 2.0


def _authorize(request: Request) -> None:
    token = request.app.state.settings.metrics_token
    peer = request.client.host if request.client else None
    if metrics_allowed(request.headers.get("authorization", ""), token, peer):
        return
    if not token:
        raise ApiError(
            403,
            "/metrics answers only loopback and private-network addresses unless METRICS_TOKEN is "
            "set (then it needs 'Authorization: Bearer <METRICS_TOKEN>')",
            code="metrics_not_public",
        )
    raise ApiError(
        401,
        "/metrics needs 'Authorization: Bearer <METRICS_TOKEN>'",
        code="invalid_metrics_token",
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.get("/metrics", summary="Prometheus metrics (behind METRICS_TOKEN, or for private addresses only)")
async def metrics(request: Request) -> Response:
    _authorize(request)
    try:
        async with asyncio.timeout(REDIS_READ_TIMEOUT_S):
            snapshot = await read_snapshot(request.app.state.queue)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("metrics: cannot read the cluster's state from Redis: %s", exc or "timeout")
        snapshot = ClusterSnapshot(redis_up=False)
    cluster = CollectorRegistry()
    cluster.register(ClusterCollector(snapshot))
    body = generate_latest(request.app.state.metrics.registry) + generate_latest(cluster)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
