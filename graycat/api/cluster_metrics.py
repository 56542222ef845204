"""The cluster's figures, read from Redis when `/metrics` is scraped: queues, job outcomes, and every live
worker's heartbeat (its slots, jobs, engine counters and GPUs), so workers behind NAT need no scraping.

The pool counters live in Redis and are the same whichever api replica exports them: aggregate them across
replicas with `max by (kind, model)`, not `sum`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from graycat.metrics import worker_families
from graycat.queue import dead_letters
from graycat.queue.client import JobQueue, worker_pools

# Job outcomes of the pool counters.
OUTCOMES = ("completed", "failed", "cancelled", "expired")


@dataclass
class ClusterSnapshot:
    """What one scrape read from Redis; `redis_up` False when it could not."""

    redis_up: bool
    pools: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0
    read_seconds: float = 0.0
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # token fingerprint -> today's usage


async def read_snapshot(queue: JobQueue) -> ClusterSnapshot:
    """Read the pools, the live workers and the dead-letter stream (a few round trips, whatever the load)."""
    began = time.perf_counter()
    pools = await queue.pool_counters()
    workers = await queue.live_workers()
    dead = await dead_letters.length(queue.redis)
    usage = await queue.usage_of_day(time.strftime("%Y-%m-%d", time.gmtime()))
    return ClusterSnapshot(True, pools, workers, dead, time.perf_counter() - began, usage)


class ClusterCollector(Collector):
    """Turns one snapshot into metric families (used for one scrape, then dropped)."""

    def __init__(self, snapshot: ClusterSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        up = GaugeMetricFamily(
            "graycat_redis_up", "1 when this api process could read the cluster's state from Redis for this scrape"
        )
        up.add_metric([], 1.0 if snap.redis_up else 0.0)
        yield up
        if not snap.redis_up:
            return
        read = GaugeMetricFamily(
            "graycat_redis_read_seconds", "Time this scrape took to read the cluster's state from Redis"
        )
        read.add_metric([], snap.read_seconds)
        yield read
        yield from self._pools()
        yield from worker_families(snap.workers)
        usage = GaugeMetricFamily(
            "graycat_token_usage_today",
            "A token's usage since midnight UTC, by what was "
            "counted (requests, errors, jobs, prompt_tokens, completion_tokens, images)",
            labels=["token", "counted"],
        )
        for token, counts in sorted(snap.usage.items()):
            for counted, amount in sorted(counts.items()):
                usage.add_metric([token, counted], amount)
        yield usage

    def _pools(self) -> Iterator[Metric]:
        labels = ["kind", "model"]
        waiting = GaugeMetricFamily("graycat_queue_waiting", "Jobs waiting for a worker", labels=labels)
        active = GaugeMetricFamily("graycat_queue_active", "Jobs running on a worker", labels=labels)
        oldest = GaugeMetricFamily(
            "graycat_queue_oldest_wait_seconds", "Age of the oldest waiting job (0: none waits)", labels=labels
        )
        jobs = CounterMetricFamily(
            "graycat_jobs",
            "Jobs ended, by outcome (completed, failed, cancelled, expired)",
            labels=[*labels, "outcome"],
        )
        redelivered = CounterMetricFamily(
            "graycat_job_redeliveries", "Jobs taken over from a worker that stopped heartbeating", labels=labels
        )
        dead = CounterMetricFamily(
            "graycat_dead_letters", "Jobs failed past MAX_DELIVERIES into the dead-letter stream", labels=labels
        )
        workers_up = GaugeMetricFamily(
            "graycat_workers_up", "Live workers serving the pool (0: its jobs wait until they expire)", labels=labels
        )
        serving: dict[tuple[str, str], int] = {}
        for w in self.snapshot.workers:
            if w.get("stopping"):
                continue
            for served in worker_pools(w):
                serving[served] = serving.get(served, 0) + 1
        for p in self.snapshot.pools:
            pool = [p["kind"], p["model"]]
            waiting.add_metric(pool, p["waiting"])
            active.add_metric(pool, p["active"])
            oldest.add_metric(pool, p["oldest_wait_s"])
            for outcome in OUTCOMES:
                jobs.add_metric([*pool, outcome], p[outcome])
            redelivered.add_metric(pool, p["redelivered"])
            dead.add_metric(pool, p["dead_lettered"])
            serving.setdefault((p["kind"], p["model"]), 0)
        for (kind, model), count in sorted(serving.items()):
            workers_up.add_metric([kind, model], count)
        dead_stream = GaugeMetricFamily("graycat_dead_letter_stream_length", "Entries kept in the dead-letter stream")
        dead_stream.add_metric([], self.snapshot.dead_letters)
        yield from (waiting, active, oldest, jobs, redelivered, dead, workers_up, dead_stream)
