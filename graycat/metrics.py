"""Prometheus metric definitions: an api process's own (its HTTP traffic and the jobs it relays), and the
per-worker families built from worker heartbeats.

The cluster's figures (queues, job outcomes, workers) are read from Redis when the api's `/metrics` is
scraped (graycat/api/cluster_metrics.py); a worker on a reachable network also serves its own
(graycat/workers/metrics_server.py).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from graycat.api.dialects.paths import path_dialect
from graycat.api.queue_waits import QueueWaits

# Seconds: from a few ms (the gateway alone) to minutes (long generations, images).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
UNMATCHED = "unmatched"  # the route label of a path no route serves (so scanners cannot add series)

_GATEWAY = frozenset(
    {
        "/",
        "/health",
        "/metrics",
        "/queue/status",
        "/models",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
        UNMATCHED,
    }
)


# The engines' own figures that workers report in their heartbeat (engine stats "llamacpp" and "images",
# exported as graycat_worker_<name>), and the NVML readings of their GPUs (graycat/workers/gpu.py).
ENGINE_COUNTERS = {
    "llamacpp": {
        "prompt_tokens_total": "Prompt tokens the worker's llama.cpp engine processed",
        "prompt_seconds_total": "Seconds the worker's llama.cpp engine spent processing prompts",
        "tokens_predicted_total": "Tokens the worker's llama.cpp engine generated",
        "tokens_predicted_seconds_total": "Seconds the worker's llama.cpp engine spent generating tokens",
    },
    "images": {
        "images_total": "Images the worker's image engine generated",
        "diffusion_steps_total": "Denoising steps the worker's diffusers engine ran (not reported by A1111 relays)",
        "diffusion_seconds_total": "Seconds the worker's image engine spent generating images",
    },
}
ENGINE_GAUGES = {
    "requests_processing": "Requests the worker's llama.cpp engine is processing",
    "requests_deferred": "Requests the worker's llama.cpp engine has deferred (no free slot)",
}
GPU_GAUGES = {
    "memory_used_bytes": "GPU memory in use",
    "memory_total_bytes": "GPU memory in all",
    "utilization_ratio": "Share of the last sample period the GPU was busy (0-1)",
    "temperature_celsius": "GPU temperature",
}


def metrics_allowed(authorization: str, token: str | None, peer: str | None) -> bool:
    """Whether a scrape may read /metrics: with METRICS_TOKEN set, when it presents it; without, when it comes
    from a loopback or private address (Prometheus on the same host or network, never the public internet)."""
    if not token:
        return peer is None or private_address(peer)
    presented = authorization.removeprefix("Bearer ").strip()
    return hmac.compare_digest(presented.encode(), token.encode())


def private_address(host: str) -> bool:
    """A loopback, private (RFC 1918, unique local) or link-local address; False for names and public ones."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_private or address.is_link_local


def dialect_of(route: str) -> str:
    """The API a route belongs to: anthropic, openai, jobs, a1111, ollama, gateway (its own routes) or llamacpp."""
    return path_dialect(route) or ("gateway" if route in _GATEWAY else "llamacpp")


class ApiMetrics:
    """The metrics one api process records, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        reg = self.registry
        self.requests = Counter(
            "graycat_http_requests",
            "HTTP requests answered, by route template, dialect and status",
            ["route", "dialect", "status"],
            registry=reg,
        )
        self.duration = Histogram(
            "graycat_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response (a stream: its last event)",
            ["route", "dialect"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.first_byte = Histogram(
            "graycat_http_response_start_seconds",
            "Time from a request's arrival to "
            "its response headers (a JSON answer: all of it; a stream: its first "
            "token)",
            ["route", "dialect"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge("graycat_http_requests_in_flight", "Requests being answered now", registry=reg)
        self.rejected = Counter(
            "graycat_queue_rejected",
            "Requests refused with 503 queue_full, by reason (pool_full, token_limit)",
            ["reason"],
            registry=reg,
        )
        for reason in ("pool_full", "token_limit"):  # present from the start, so rates over them work at once
            self.rejected.labels(reason)
        self.queue_wait = Histogram(
            "graycat_queue_wait_seconds",
            "Time a relayed request's job waited for a worker (submit to start)",
            ["kind", "model"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.first_token = Histogram(
            "graycat_time_to_first_token_seconds",
            "Time from a streamed request's submission to its first token",
            ["kind", "model"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.waits = QueueWaits()  # the last minutes' waits, for the console
        self._per_route: dict[tuple[str, int], tuple[Counter, Histogram, Histogram]] = {}
        self._per_model: dict[tuple[Histogram, str, str], Histogram] = {}

    def queue_waited(self, kind: str, model: str, seconds: float) -> None:
        """A relayed request's job started after waiting `seconds` in its pool."""
        self.job_timing(self.queue_wait, kind, model, seconds)
        self.waits.record(kind, model, seconds)

    def request_done(self, route: str, status: int, first_byte_s: float, total_s: float) -> None:
        """Record one answered request (the labelled series are looked up once per route and status)."""
        series = self._per_route.get((route, status))
        if series is None:
            dialect = dialect_of(route)
            series = (
                self.requests.labels(route, dialect, str(status)),
                self.duration.labels(route, dialect),
                self.first_byte.labels(route, dialect),
            )
            self._per_route[(route, status)] = series
        count, duration, first_byte = series
        count.inc()
        duration.observe(total_s)
        first_byte.observe(first_byte_s)

    def job_timing(self, family: Histogram, kind: str, model: str, seconds: float) -> None:
        """Observe `seconds` in `family` (queue_wait, first_token) for a job of `kind` on `model` (the labelled
        series are looked up once per kind and model)."""
        series = self._per_model.get((family, kind, model))
        if series is None:
            series = self._per_model[(family, kind, model)] = family.labels(kind, model)
        series.observe(seconds)


def worker_families(workers: Iterable[dict[str, Any]]) -> list[Metric]:
    """The per-worker metric families of worker heartbeats (graycat/workers/worker.py Worker.info)."""
    ids = ["worker", "kind"]
    info = GaugeMetricFamily(
        "graycat_worker_info",
        "One series per live worker: where it runs and what it serves",
        labels=[*ids, "host", "version", "models"],
    )
    slots = GaugeMetricFamily("graycat_worker_slots", "Jobs the worker can run at once", labels=ids)
    busy = GaugeMetricFamily("graycat_worker_slots_busy", "Jobs the worker is running", labels=ids)
    stopping = GaugeMetricFamily(
        "graycat_worker_stopping", "1 while the worker finishes its jobs before exiting", labels=ids
    )
    started = GaugeMetricFamily("graycat_worker_start_time_seconds", "Unix time the worker started", labels=ids)
    jobs = CounterMetricFamily(
        "graycat_worker_jobs", "Jobs the worker ended since it started, by outcome", labels=[*ids, "outcome"]
    )
    engine_counters = {
        (engine, name): CounterMetricFamily(f"graycat_worker_{name.removesuffix('_total')}", text, labels=ids)
        for engine, names in ENGINE_COUNTERS.items()
        for name, text in names.items()
    }
    engine_gauges = {
        name: GaugeMetricFamily(f"graycat_worker_engine_{name}", text, labels=ids)
        for name, text in ENGINE_GAUGES.items()
    }
    gpu = {
        name: GaugeMetricFamily(f"graycat_gpu_{name}", text, labels=[*ids, "gpu", "name"])
        for name, text in GPU_GAUGES.items()
    }
    pulled = {
        part: GaugeMetricFamily(f"graycat_worker_pull_{part}_bytes", text, labels=[*ids, "model"])
        for part, text in (
            ("completed", "Bytes a worker has of the model it downloads at start"),
            ("total", "Size of the model a worker downloads at start (0: not known)"),
        )
    }
    for w in workers:
        labels = [str(w.get("id", "")), str(w.get("kind", ""))]
        info.add_metric([*labels, str(w.get("host", "")), str(w.get("version", "")), ",".join(w.get("models", []))], 1)
        slots.add_metric(labels, float(w.get("slots") or 0))
        busy.add_metric(labels, float(w.get("busy") or 0))
        stopping.add_metric(labels, 1.0 if w.get("stopping") else 0.0)
        started.add_metric(labels, float(w.get("started") or 0))
        for outcome, count in (w.get("outcomes") or {}).items():
            jobs.add_metric([*labels, outcome], count)
        stats = w.get("engine") or {}
        for (engine, name), family in engine_counters.items():
            if name in (stats.get(engine) or {}):
                family.add_metric(labels, stats[engine][name])
        for model, progress in (stats.get("pulling") or {}).items():
            for part, bytes_gauge in pulled.items():
                bytes_gauge.add_metric([*labels, model], float(progress.get(part) or 0))
        figures = stats.get("llamacpp") or {}
        for name, gauge in engine_gauges.items():
            if name in figures:
                gauge.add_metric(labels, figures[name])
        for card in w.get("gpus") or []:
            for name, gauge in gpu.items():
                if name in card:
                    gauge.add_metric([*labels, str(card["index"]), str(card["name"])], card[name])
    return [
        info,
        slots,
        busy,
        stopping,
        started,
        jobs,
        *engine_counters.values(),
        *engine_gauges.values(),
        *gpu.values(),
        *pulled.values(),
    ]
