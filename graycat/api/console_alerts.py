"""The console's firing alerts: the conditions of the shipped Prometheus rules (deploy/monitoring/prometheus/
alerts.yml) that one snapshot of the cluster can test, checked now, without the rules' `for` durations. The api
does not ask Prometheus, which may not run; those that need rates over time or other series are left out."""

from __future__ import annotations

from typing import Any

from graycat.queue.client import worker_pools

OLDEST_WAIT_S = 30  # GraycatQueueWaitHigh
GPU_MEMORY_FULL = 0.95  # GraycatGpuMemoryNearFull


def firing(state: dict[str, Any], *, admin: bool) -> list[dict[str, str]]:
    """The alerts whose condition holds in `state` (pools, workers, dead letters), each with the rule's name,
    severity and a summary; dead letters and GPUs are for admins only, like the snapshot's other details."""
    alerts: list[dict[str, str]] = []
    serving = {pool for w in state.get("workers", []) if not w.get("stopping") for pool in worker_pools(w)}
    for p in state.get("pools", []):
        pool = f"{p['kind']}/{p['model']}"
        if (p["kind"], p["model"]) not in serving:
            alerts.append(
                _alert(
                    "GraycatNoWorkerForModel",
                    "critical",
                    f"No live worker serves {pool} ({p.get('waiting', 0)} waiting)",
                )
            )
        if p.get("waiting") and p.get("oldest_wait_s", 0) > OLDEST_WAIT_S:
            alerts.append(
                _alert(
                    "GraycatQueueWaitHigh",
                    "warning",
                    f"Oldest waiting {pool} job has waited {round(p['oldest_wait_s'])} s",
                )
            )
    if not admin:
        return alerts
    if state.get("dead_letters"):
        alerts.append(
            _alert("GraycatDeadLetters", "warning", f"{state['dead_letters']} job(s) in the dead-letter stream")
        )
    for w in state.get("workers", []):
        for gpu in w.get("gpus") or []:
            total = gpu.get("memory_total_bytes") or 0
            if total and (gpu.get("memory_used_bytes") or 0) / total > GPU_MEMORY_FULL:
                alerts.append(
                    _alert(
                        "GraycatGpuMemoryNearFull",
                        "warning",
                        f"GPU {gpu.get('index')} of worker "
                        f"{w.get('id')} is {round(100 * gpu['memory_used_bytes'] / total)}% full",
                    )
                )
    return alerts


def _alert(name: str, severity: str, summary: str) -> dict[str, str]:
    return {"alert": name, "severity": severity, "summary": summary}
