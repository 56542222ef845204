"""A worker's own `/metrics`, for a worker on a network Prometheus can reach (WORKER_METRICS_PORT).

It serves the same per-worker series the api exports from the worker's heartbeat, read live from the worker,
behind METRICS_TOKEN when that is set, to private addresses only when not. A worker behind NAT needs none of
this: its heartbeat carries them.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from graycat.error_shapes import error_type, llamacpp_error
from graycat.metrics import metrics_allowed, worker_families
from graycat.workers.worker import Worker


class _WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        yield from worker_families([self.worker.info()])


async def serve_metrics(worker: Worker, host: str, port: int, token: str | None) -> web.AppRunner:
    """Start serving `GET /metrics` on host:port in this event loop; the caller cleans the runner up."""
    registry = CollectorRegistry()
    registry.register(_WorkerCollector(worker))

    async def metrics(request: web.Request) -> web.Response:
        if not metrics_allowed(request.headers.get("Authorization", ""), token, request.remote):
            status = 401 if token else 403
            message = "/metrics needs 'Authorization: Bearer <METRICS_TOKEN>' (without it, a private address)"
            return web.Response(
                body=llamacpp_error(status, message, error_type(status)), status=status, content_type="application/json"
            )
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
