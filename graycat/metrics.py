"""Prometheus metrics of an api process: its HTTP traffic and what it sees of the jobs it relays.

The cluster's figures (queues, job outcomes, workers, engines, GPUs) are read from Redis when `/metrics`
is scraped: see graycat/api/cluster_metrics.py.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

# Seconds: from a few ms (the gateway alone) to minutes (long generations, images).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
UNMATCHED = "unmatched"  # the route label of a path no route serves (so scanners cannot add series)

_DIALECTS = (("/v1/", "openai"), ("/jobs", "jobs"), ("/sdapi/", "a1111"), ("/api/", "ollama"))
_GATEWAY = frozenset({"/health", "/metrics", "/queue/status", "/models", "/docs", "/docs/oauth2-redirect",
                      "/redoc", "/openapi.json", UNMATCHED})


def dialect_of(route: str) -> str:
    """The API a route belongs to: openai, jobs, a1111, ollama, gateway (its own routes) or llamacpp."""
    for prefix, dialect in _DIALECTS:
        if route.startswith(prefix):
            return dialect
    return "gateway" if route in _GATEWAY else "llamacpp"


class ApiMetrics:
    """The metrics one api process records, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        reg = self.registry
        self.requests = Counter("graycat_http_requests", "HTTP requests answered, by route template, dialect and "
                                "status", ["route", "dialect", "status"], registry=reg)
        self.duration = Histogram("graycat_http_request_duration_seconds", "Time from a request's arrival to "
                                  "the end of its response (a stream: its last event)", ["route", "dialect"],
                                  buckets=LATENCY_BUCKETS, registry=reg)
        self.first_byte = Histogram("graycat_http_response_start_seconds", "Time from a request's arrival to "
                                    "its response headers (a JSON answer: all of it; a stream: its first "
                                    "token)", ["route", "dialect"], buckets=LATENCY_BUCKETS, registry=reg)
        self.in_flight = Gauge("graycat_http_requests_in_flight", "Requests being answered now", registry=reg)
        self.rejected = Counter("graycat_queue_rejected", "Requests refused with 503 queue_full, by reason "
                                "(pool_full, token_limit)", ["reason"], registry=reg)
        for reason in ("pool_full", "token_limit"):  # present from the start, so rates over them work at once
            self.rejected.labels(reason)
        self.queue_wait = Histogram("graycat_queue_wait_seconds", "Time a relayed request's job waited for a "
                                    "worker (submit to start)", ["kind", "model"], buckets=LATENCY_BUCKETS,
                                    registry=reg)
        self.first_token = Histogram("graycat_time_to_first_token_seconds", "Time from a streamed request's "
                                     "submission to its first token", ["kind", "model"], buckets=LATENCY_BUCKETS,
                                     registry=reg)
        self._per_route: dict[tuple[str, int], tuple[Counter, Histogram, Histogram]] = {}

    def request_done(self, route: str, status: int, first_byte_s: float, total_s: float) -> None:
        """Record one answered request (the labelled series are looked up once per route and status)."""
        series = self._per_route.get((route, status))
        if series is None:
            dialect = dialect_of(route)
            series = (self.requests.labels(route, dialect, str(status)), self.duration.labels(route, dialect),
                      self.first_byte.labels(route, dialect))
            self._per_route[(route, status)] = series
        count, duration, first_byte = series
        count.inc()
        duration.observe(total_s)
        first_byte.observe(first_byte_s)
