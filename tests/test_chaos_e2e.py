"""100 jobs over 3 workers while one of them is SIGKILLed every few seconds: every job ends once."""

from __future__ import annotations

import random
import signal
import time

import httpx
import pytest

from graycat.jobs import END
from graycat.queue import keys
from tests.conftest import TOKEN, Cluster, Gateway, Proc, RedisServer, wait_until

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "chaos-null"


def null_worker(cluster: Cluster) -> Proc:
    # 100 jobs of ~1 s on 6 slots: the run outlasts the four kills, two seconds apart
    proc = cluster.spawn(
        "chaos",
        ["worker", "null", "--model-name", MODEL, "--slots", "2", "--tokens", "30", "--token-delay-ms", "30"],
        VISIBILITY_TIMEOUT="5",
    )
    wait_until(lambda: " ready: " in proc.output(), 30, "a null worker")
    return proc


def test_jobs_survive_workers_killed_at_random(cluster: Cluster, gateway: Gateway, redis_server: RedisServer) -> None:
    r = redis_server.client()
    workers = [null_worker(cluster) for _ in range(3)]
    with httpx.Client(base_url=gateway.base, headers=AUTH, timeout=10) as http:
        body = {"route": "/completion", "body": {"prompt": "go", "model": MODEL}}
        ids = [http.post("/jobs", json=body).json()["id"] for _ in range(100)]

        def finished() -> int:
            return sum(r.hget(keys.job(i), "state") == b"completed" for i in ids)

        kills = 0
        deadline = time.monotonic() + 120
        while finished() < 100 and time.monotonic() < deadline:
            time.sleep(2)
            if kills < 4:
                victim = random.choice(workers)
                victim.stop(signal.SIGKILL)
                workers.remove(victim)
                workers.append(null_worker(cluster))
                kills += 1
        assert finished() == 100, f"{finished()} of 100 completed"
        for job_id in ids:  # each answered exactly once, with the whole reply
            ends = [e for _, e in r.xrange(keys.events(job_id)) if e[b"e"][:1] == END]
            assert len(ends) == 1
            assert http.get(f"/jobs/{job_id}").json()["result"]["content"] == "x" * 30
    redelivered = int(r.hget(keys.pool_stats("llm", MODEL), "redelivered") or 0)
    print(f"\n{kills} workers killed, {redelivered} jobs redelivered")
    assert kills == 4 and redelivered >= 1
    for w in workers:
        w.stop()


def test_a_stopping_worker_hands_back_what_outlives_its_stop_timeout(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    r = redis_server.client()
    slow = ["worker", "null", "--model-name", "stop-null", "--slots", "1", "--tokens", "100", "--token-delay-ms", "50"]
    first = cluster.spawn("stopping", slow, STOP_TIMEOUT="1")
    wait_until(lambda: " ready: " in first.output(), 30, "the worker")
    with httpx.Client(base_url=gateway.base, headers=AUTH, timeout=10) as http:
        body = {"route": "/completion", "body": {"prompt": "x", "model": "stop-null"}}
        job_id = http.post("/jobs", json=body).json()["id"]
        wait_until(lambda: r.hget(keys.job(job_id), "state") == b"active", 10, "the job to run")
        started = time.monotonic()
        assert first.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 4  # the stop deadline, not the job's 5 s
        assert "handing them back" in first.output()
        second = cluster.spawn("taking-over", slow)
        wait_until(lambda: http.get(f"/jobs/{job_id}").json()["state"] == "completed", 30, "the job to complete")
        info = http.get(f"/jobs/{job_id}").json()
        assert info["attempts"] == 2 and info["result"]["content"] == "x" * 100
    second.stop()
