"""What the console's live overview shows, read from Redis at most once a second per api process whatever
the number of consoles open: the pools' counters, the live workers' heartbeats and the dead-letter count; with
this process's queue waits of the last minutes and the alert conditions they meet."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from graycat.api.console_alerts import firing
from graycat.api.queue_waits import QueueWaits
from graycat.queue import dead_letters, pool_minutes
from graycat.queue.client import JobQueue

SNAPSHOT_S = 1.0  # how often a console gets a snapshot, and how long one read serves every console
HISTORY_MIN = 60  # minutes of completed jobs per pool sent when a console connects, the current one included
_SUMMARY = ("id", "kind", "kinds", "models", "slots", "busy", "stopping", "loading", "outcomes")
_DETAILS = (*_SUMMARY, "host", "version", "gpus", "jobs")  # where workers run and what: admins only


class ConsoleFeed:
    """One shared read of the cluster's state, renewed when a console asks for it after SNAPSHOT_S."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._read_at = -SNAPSHOT_S
        self._state: dict[str, Any] = {}

    async def state(self, queue: JobQueue, waits: QueueWaits) -> dict[str, Any]:
        """The pools, the live workers, the dead-letter count and the queue waits, at most SNAPSHOT_S old."""
        async with self._lock:
            if time.monotonic() - self._read_at >= SNAPSHOT_S * 0.9:
                pools = await queue.pool_counters()
                workers = await queue.live_workers()
                dead = await dead_letters.length(queue.redis)
                self._state = {"pools": pools, "workers": workers, "dead_letters": dead, "waits": waits.quantiles()}
                self._read_at = time.monotonic()
            return self._state


def snapshot(state: dict[str, Any], *, admin: bool) -> dict[str, Any]:
    """What one caller may see of `state`: workers' hosts, GPUs and jobs, and the dead letters, for admins;
    `waits` (per "kind/model": count, p50, p95 in seconds) and the firing `alerts` for all."""
    now = time.time()
    fields = _DETAILS if admin else _SUMMARY
    workers = [
        {
            **{k: w.get(k) for k in fields},
            "generated": generated(w.get("engine") or {}),
            "heartbeat_age_s": round(max(0.0, now - float(w.get("heartbeat") or now)), 1),
        }
        for w in state.get("workers", [])
    ]
    out: dict[str, Any] = {
        "time": now,
        "admin": admin,
        "pools": state.get("pools", []),
        "workers": workers,
        "waits": state.get("waits", {}),
        "alerts": firing(state, admin=admin),
    }
    if admin:
        out["dead_letters"] = state.get("dead_letters", 0)
    return out


def generated(engine: dict[str, Any]) -> dict[str, float]:
    """A worker's running totals of what its engine made (tokens, images), from its heartbeat's engine stats:
    the console turns them into tokens/s and images/min."""
    figures = {
        "tokens": (engine.get("llamacpp") or {}).get("tokens_predicted_total"),
        "images": (engine.get("images") or {}).get("images_total"),
    }
    return {name: value for name, value in figures.items() if isinstance(value, int | float)}


async def history(queue: JobQueue, pools: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Per pool ("kind/model"): the jobs completed in each of the last HISTORY_MIN minutes (the last one is the
    current minute, so far), oldest first."""
    if not pools:
        return {}
    counts = await pool_minutes.completed(queue.redis, [(p["kind"], p["model"]) for p in pools], HISTORY_MIN)
    return {f"{p['kind']}/{p['model']}": per_minute for p, per_minute in zip(pools, counts, strict=True)}
