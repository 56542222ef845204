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
    proc = cluster.spawn("chaos", ["worker", "null", "--model-name", MODEL, "--slots", "2", "--tokens", "10",
                                   "--token-delay-ms", "30"], VISIBILITY_TIMEOUT="5")
    wait_until(lambda: " ready: " in proc.output(), 30, "a null worker")
    return proc


def test_jobs_survive_workers_killed_at_random(cluster: Cluster, gateway: Gateway,
                                              redis_server: RedisServer) -> None:
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
            assert http.get(f"/jobs/{job_id}").json()["result"]["content"] == "x" * 10
    redelivered = int(r.hget(keys.pool_stats("llm", MODEL), "redelivered") or 0)
    print(f"\n{kills} workers killed, {redelivered} jobs redelivered")
    assert kills == 4 and redelivered >= 1
    for w in workers:
        w.stop()
