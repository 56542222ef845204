"""The queue waits of the last minutes, per pool, kept by each api process for the console's p50/p95 (the
`graycat_queue_wait_seconds` histogram has them for Prometheus, cumulated since the process started)."""

from __future__ import annotations

import math
import time
from collections import deque

WINDOW_S = 15 * 60.0  # how far back the quantiles look
KEPT = 2048  # waits kept per pool at most: the newest


class QueueWaits:
    """Per pool ("kind/model"): (when, seconds) of the jobs this process saw start, newest last."""

    def __init__(self) -> None:
        self._pools: dict[str, deque[tuple[float, float]]] = {}

    def record(self, kind: str, model: str, seconds: float) -> None:
        """One relayed job started after waiting `seconds`."""
        key = f"{kind}/{model}"
        seen = self._pools.get(key)
        if seen is None:
            seen = self._pools[key] = deque(maxlen=KEPT)
        seen.append((time.time(), seconds))

    def quantiles(self) -> dict[str, dict[str, float]]:
        """Per pool with waits in the window: their count, p50 and p95 (nearest rank) in seconds."""
        since = time.time() - WINDOW_S
        out: dict[str, dict[str, float]] = {}
        for key, seen in self._pools.items():
            while seen and seen[0][0] < since:
                seen.popleft()
            if seen:
                waits = sorted(s for _, s in seen)
                out[key] = {"count": len(waits), "p50": round(rank(waits, 0.5), 3), "p95": round(rank(waits, 0.95), 3)}
        return out


def rank(ordered: list[float], q: float) -> float:
    """The nearest-rank `q` quantile of an ordered, non-empty list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
