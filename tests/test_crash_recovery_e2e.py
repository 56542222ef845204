"""Workers killed mid-job: another worker takes the job over; clients hear one answer; poison jobs end."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import redis

from graycat.queue import keys
from tests.conftest import TOKEN, Cluster, Gateway, Proc, RedisServer, wait_until
from tests.rawhttp import ChunkedResponse

pytestmark = pytest.mark.e2e
FAST = {"VISIBILITY_TIMEOUT": "5", "MAX_DELIVERIES": "2"}


def start_worker(cluster: Cluster, model: str) -> Proc:
    return cluster.worker("--model-name", model, "--slots", "1", **FAST)


def running_job(r: redis.Redis, model: str, worker: Proc) -> str | None:
    """The id of the job of `model` that `worker` is running, if any."""
    for key in r.scan_iter(keys.job("*")):
        record = r.hgetall(key)
        if (
            record.get(b"model") == model.encode()
            and record.get(b"state") == b"active"
            and f"worker {record[b'worker'].decode()} ready" in worker.output()
        ):
            return key.decode().rsplit(":", 1)[1]
    return None


def kill_when_running(r: redis.Redis, model: str, worker: Proc, *, after_events: int = 1) -> str:
    """SIGKILL `worker` once it runs a job of `model` and the job has `after_events` events; the job id."""
    wait_until(lambda: running_job(r, model, worker) is not None, 30, "the job to run")
    job_id = running_job(r, model, worker)
    assert job_id
    wait_until(lambda: r.xlen(keys.events(job_id)) >= after_events, 30, "events")
    time.sleep(0.3)  # well into generation
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(10)
    return job_id


def test_a_killed_workers_job_is_answered_once_by_another(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    model, r = "crash-model-1", redis_server.client()
    first = start_worker(cluster, model)
    body = {"prompt": "Write a long story:", "n_predict": 300, "ignore_eos": True, "model": model}
    with gateway.client() as http, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, "/completion", json=body)
        job_id = kill_when_running(r, model, first)
        second = start_worker(cluster, model)
        resp = pending.result(60)
    assert resp.status_code == 200 and resp.json()["tokens_predicted"] == 300
    assert resp.headers["x-job-id"] == job_id and resp.headers["x-worker-id"] in second.output()
    record = r.hgetall(keys.job(job_id))
    assert record[b"state"] == b"completed" and record[b"attempts"] == b"2"
    assert r.xlen(keys.pool("llm", model)) == 0
    assert r.hget(keys.pool_stats("llm", model), "redelivered") == b"1"
    second.stop()


def test_a_deterministic_stream_continues_seamlessly(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    model, r = "crash-model-2", redis_server.client()
    first = start_worker(cluster, model)
    body = {"prompt": "List the planets:", "n_predict": 200, "ignore_eos": True, "temperature": 0, "model": model}
    with gateway.client() as http:
        expected = http.post("/completion", json=body).json()["content"]
    stream = ChunkedResponse(gateway.base, "/completion", {**body, "stream": True}, TOKEN)
    with ThreadPoolExecutor(1) as pool:
        chunks = pool.submit(lambda: list(stream.chunks()))
        kill_when_running(r, model, first, after_events=20)
        second = start_worker(cluster, model)
        events = [orjson.loads(c[6:]) for c in chunks.result(60)]
    stream.close()
    assert "".join(e["content"] for e in events) == expected  # nothing repeated, nothing missing
    assert events[-1]["stop"] is True and events[-1]["tokens_predicted"] == 200
    second.stop()


def test_a_random_stream_ends_with_an_error_event(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    model, r = "crash-model-3", redis_server.client()
    first = start_worker(cluster, model)
    body = {"prompt": "Go:", "n_predict": 200, "ignore_eos": True, "seed": -1, "stream": True, "model": model}
    stream = ChunkedResponse(gateway.base, "/completion", body, TOKEN)
    with ThreadPoolExecutor(1) as pool:
        chunks = pool.submit(lambda: list(stream.chunks()))
        kill_when_running(r, model, first, after_events=5)
        second = start_worker(cluster, model)
        received = chunks.result(60)
    stream.close()
    last = orjson.loads(received[-1][6:])
    assert last["error"]["code"] == 502 and "retry" in last["error"]["message"]
    assert all(b'"error"' not in c for c in received[:-1])
    second.stop()


def test_a_poison_job_fails_after_the_delivery_cap(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    model, r = "crash-model-4", redis_server.client()
    dead_before = r.xlen(keys.DEAD)
    body = {"prompt": "Poison:", "n_predict": 300, "ignore_eos": True, "model": model}
    worker = start_worker(cluster, model)
    with gateway.client() as http, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, "/completion", json=body)
        for _ in range(2):  # MAX_DELIVERIES=2: it kills its worker twice
            kill_when_running(r, model, worker)
            worker = start_worker(cluster, model)
        resp = pending.result(60)
    assert resp.status_code == 500 and "each of its 2 runs" in resp.json()["error"]["message"]
    assert r.xlen(keys.DEAD) == dead_before + 1
    [(_, entry)] = r.xrevrange(keys.DEAD, count=1)
    assert entry[b"model"] == model.encode() and entry[b"deliveries"] == b"3"
    assert r.hget(keys.pool_stats("llm", model), "dead_lettered") == b"1"
    with gateway.client() as http:  # the pool keeps serving
        ok = http.post("/completion", json={"prompt": "ok", "n_predict": 2, "model": model})
    assert ok.status_code == 200
    worker.stop()


def test_a_dead_workers_jobs_run_again_at_once_and_end_once(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    """The api notices a SIGKILLed worker by its closed Redis connections, long before VISIBILITY_TIMEOUT (30 s
    here): a live worker reruns its jobs within seconds, and each job ends exactly once."""
    model, r, jobs = "crash-model-5", redis_server.client(), 3
    slow = ["worker", "null", "--model-name", model, "--slots", "4", "--tokens", "60", "--token-delay-ms", "50"]
    workers = [cluster.spawn("null-worker", slow, VISIBILITY_TIMEOUT="30") for _ in range(2)]
    wait_until(lambda: all(cluster.ready(w) for w in workers), 60, "the workers")
    with gateway.client() as http:
        ids = [
            http.post("/jobs", json={"route": "/completion", "body": {"prompt": "x", "model": model}}).json()["id"]
            for _ in range(jobs)
        ]
    wait_until(lambda: all(r.hget(keys.job(i), "state") == b"active" for i in ids), 30, "the jobs to run")
    victim = next(w for w in workers if running_job(r, model, w))
    [survivor] = [w for w in workers if w is not victim]
    on_victim = [i for i in ids if f"worker {r.hget(keys.job(i), 'worker').decode()} ready" in victim.output()]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    killed = time.monotonic()
    wait_until(lambda: all(r.hget(keys.job(i), "attempts") == b"2" for i in on_victim), 30, "the jobs to rerun")
    assert time.monotonic() - killed < 5  # VISIBILITY_TIMEOUT is 30 s: only the closed connections tell
    wait_until(lambda: all(r.hget(keys.job(i), "state") == b"completed" for i in ids), 60, "the jobs to end")
    for job_id in ids:
        ends = [e for _, e in r.xrange(keys.events(job_id)) if e[b"e"][:1] == b"r"]
        assert len(ends) == 1 and ends[0][b"e"][:4] == b"r200"
        assert f"worker {r.hget(keys.job(job_id), 'worker').decode()} ready" in survivor.output()
    assert r.hget(keys.pool_stats("llm", model), "completed") == str(jobs).encode()
    assert r.hget(keys.pool_stats("llm", model), "redelivered") == str(len(on_victim)).encode()
    assert r.xlen(keys.pool("llm", model)) == 0 and r.xpending(keys.pool("llm", model), keys.GROUP)["pending"] == 0
    assert "handed to other workers" in gateway.api.output()
    survivor.stop()


def test_a_worker_cut_off_and_back_stops_the_job_another_took_over(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    """A worker whose connections Redis closed while it lives (frozen here, so it cannot reconnect at once) is
    taken for dead; once back, its heartbeat tells it the job runs elsewhere and it stops it: one answer."""
    model, r = "crash-model-6", redis_server.client()
    slow = ["worker", "null", "--model-name", model, "--slots", "1", "--tokens", "100", "--token-delay-ms", "100"]
    victim = cluster.spawn("null-worker", slow, VISIBILITY_TIMEOUT="30")
    wait_until(lambda: cluster.ready(victim), 60, "the worker")
    with gateway.client() as http:
        job_id = http.post("/jobs", json={"route": "/completion", "body": {"prompt": "x", "model": model}}).json()["id"]
    wait_until(lambda: running_job(r, model, victim) == job_id, 30, "the job to run")
    standby = cluster.spawn("null-worker", slow, VISIBILITY_TIMEOUT="30")
    wait_until(lambda: cluster.ready(standby), 60, "the standby worker")
    victim_id = r.hget(keys.job(job_id), "worker").decode()
    victim.proc.send_signal(signal.SIGSTOP)
    try:
        for client in r.client_list():
            if client["name"] == victim_id:  # workers name their connections
                r.client_kill_filter(_id=client["id"])
        wait_until(lambda: r.hget(keys.job(job_id), "attempts") == b"2", 10, "the job to run elsewhere")
    finally:
        victim.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: "was taken over by another worker" in victim.output(), 10, "the worker to learn of it")
    wait_until(lambda: r.hget(keys.job(job_id), "state") == b"completed", 30, "the job to end")
    ends = [e for _, e in r.xrange(keys.events(job_id)) if e[b"e"][:1] == b"r"]
    assert len(ends) == 1 and f"worker {r.hget(keys.job(job_id), 'worker').decode()} ready" in standby.output()
    assert victim.alive() and r.exists(keys.worker(victim_id))  # it goes on, registered again
    victim.stop()
    standby.stop()
