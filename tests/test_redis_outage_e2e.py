"""Redis going away and coming back (empty): the api answers 503 meanwhile, then everything recovers alone."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, Cluster, RedisServer, free_port, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


def test_api_and_worker_recover_after_a_redis_restart(own_redis: RedisServer, tmp_path: Path) -> None:
    cluster = Cluster(own_redis, tmp_path)
    try:
        cluster.worker("--model-name", "outage-model")
        _, base = cluster.api(DEFAULT_MODEL="outage-model")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        body = {"prompt": "Hi", "n_predict": 3, "model": "outage-model"}
        assert httpx.post(base + "/completion", json=body, headers=auth, timeout=30).status_code == 200

        own_redis.stop()
        health = httpx.get(base + "/health", timeout=5)
        assert health.status_code == 503 and health.json()["redis"] is False
        down = httpx.post(base + "/completion", json=body, headers=auth, timeout=30)
        assert down.status_code == 503 and down.json()["error"]["message"]
        assert "retry-after" in down.headers

        own_redis.start()  # same port, no data: pools, groups and the model registry are gone
        wait_until(
            lambda: httpx.get(base + "/health", timeout=5).json().get("workers") == 1,
            30,
            "the worker to heartbeat again",
        )
        resp = httpx.post(base + "/completion", json=body, headers=auth, timeout=30)
        assert resp.status_code == 200 and resp.json()["tokens_predicted"] == 3
        with httpx.stream(
            "POST", base + "/completion", json={**body, "stream": True}, headers=auth, timeout=30
        ) as stream:
            events = [line for line in stream.iter_lines() if line]
        assert events[-1].startswith("data: ") and '"stop":true' in events[-1]
    finally:
        cluster.stop_all()


def test_a_worker_stops_promptly_even_when_redis_does_not_answer(own_redis: RedisServer, tmp_path: Path) -> None:
    """A frozen Redis keeps its TCP connections open but answers nothing, as a dead network link does."""
    cluster = Cluster(own_redis, tmp_path)
    worker = cluster.spawn("frozen", ["worker", "null", "--model-name", "frozen-null"], STOP_TIMEOUT="2")
    wait_until(lambda: " ready: " in worker.output(), 30, "the worker")
    assert own_redis.proc is not None
    own_redis.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.5)  # the worker is now blocked in a claim that will never be answered
        began = time.monotonic()
        worker.stop(signal.SIGTERM, timeout=20)
        assert worker.proc.returncode == 0, worker.output()[-2000:]
        assert time.monotonic() - began < 8  # its stop, plus the bounded goodbye to Redis
        assert "stopped" in worker.output()
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
        cluster.stop_all()
