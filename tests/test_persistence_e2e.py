"""Waiting jobs survive both the API process and Redis (with AOF) restarting."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, Cluster, RedisServer, free_port, wait_until

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_waiting_jobs_survive_an_api_kill_and_a_redis_restart(tmp_path: Path) -> None:
    store = RedisServer(free_port(), tmp_path, aof=True)
    store.start()
    cluster = Cluster(store, tmp_path)
    try:
        api, base = cluster.api(DEFAULT_MODEL="aof-model")
        ids = [
            httpx.post(
                base + "/jobs",
                headers=AUTH,
                timeout=10,
                json={"route": "/completion", "body": {"prompt": f"Job {i}:", "n_predict": 3}},
            ).json()["id"]
            for i in range(3)
        ]
        api.stop(signal.SIGKILL)
        store.stop()
        store.start()  # replays its append-only file
        _, base = cluster.api(DEFAULT_MODEL="aof-model")
        assert httpx.get(f"{base}/jobs/{ids[0]}", headers=AUTH, timeout=10).json()["state"] == "pending"
        cluster.worker("--model-name", "aof-model")

        def done() -> bool:
            states = [httpx.get(f"{base}/jobs/{i}", headers=AUTH, timeout=10).json()["state"] for i in ids]
            return states == ["completed"] * 3

        wait_until(done, 60, "the jobs to complete", interval=0.2)
        for job_id in ids:
            info = httpx.get(f"{base}/jobs/{job_id}", headers=AUTH, timeout=10).json()
            assert info["status"] == 200 and info["result"]["tokens_predicted"] == 3
    finally:
        cluster.stop_all()
        store.stop()
