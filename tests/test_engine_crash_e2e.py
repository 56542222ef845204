"""An engine that crashes (a native fault in llama.cpp) fails the job that caused it, never the worker: the job
is a poison job (502 `engine_crashed`, dead-lettered, not run again), the engine restarts, work goes on."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import psutil
import pytest
import redis

from graycat.jobs import END, START, Job, parse_end
from graycat.queue import keys
from graycat.queue.client import JobQueue
from graycat.queue.connection import connect
from graycat.queue.hub import EventHub
from graycat.queue.resp import PipelinedConnection
from tests.conftest import Cluster, Gateway, Proc, RedisServer, wait_until

pytestmark = pytest.mark.e2e
MODEL = "crash-engine"
# Bodies that crash llama.cpp (SIGSEGV): 50,000 nested groups overflow its recursive grammar parser, and a
# JSON schema nested 20,000 deep its schema-to-grammar converter. The api refuses such bodies before they are
# queued, so the test queues them itself, as a client of an older api (or a bug there) would.
NESTED_GRAMMAR = "root ::= " + "(" * 50000 + '"a"' + ")" * 50000
NESTED_SCHEMA = '{"type":"array","items":' * 20000 + '{"type":"string"}' + "}" * 20000
CHAT = b'{"messages":[{"role":"user","content":"Say a"}],"max_tokens":4,'
CRASHING_BODIES = {
    "completion grammar": ("/completion", orjson.dumps({"prompt": "Say a", "n_predict": 4, "grammar": NESTED_GRAMMAR})),
    "chat grammar": ("/v1/chat/completions", CHAT + b'"grammar":' + orjson.dumps(NESTED_GRAMMAR) + b"}"),
    "chat json schema": (
        "/v1/chat/completions",
        CHAT + b'"response_format":{"type":"json_object","schema":' + NESTED_SCHEMA.encode() + b"}}",
    ),
}


@pytest.fixture(scope="module")
def worker(cluster: Cluster, gateway: Gateway) -> Iterator[Proc]:
    """A worker of its own model (MAX_DELIVERIES would let a job run 3 times)."""
    proc = cluster.worker("--model-name", MODEL, "--slots", "1", MAX_DELIVERIES="3")
    yield proc
    proc.stop()


def engine_process(worker: Proc) -> psutil.Process:
    [child] = psutil.Process(worker.proc.pid).children()
    return child


def engine_stats(r: redis.Redis, worker: Proc) -> dict[str, object]:
    """The engine's figures in the worker's latest heartbeat."""
    for key in r.scan_iter(keys.worker("*")):
        info = orjson.loads(r.get(key) or b"{}")
        if MODEL in info.get("models", []) and f"worker {info['id']} ready" in worker.output():
            return dict(info["engine"])
    return {}


def restarts_so_far(r: redis.Redis, worker: Proc) -> int:
    process = engine_stats(r, worker).get("process")
    return int(process["restarts"]) if isinstance(process, dict) else 0


def assert_poisoned(r: redis.Redis, job_id: str) -> None:
    """Failed once, kept in the dead letters with the reason, and nothing left that could run it again."""
    record = r.hgetall(keys.job(job_id))
    assert record[b"state"] == b"failed" and record[b"status"] == b"502" and record[b"attempts"] == b"1"
    [reason] = [fields[b"reason"].decode() for _, fields in r.xrange(keys.DEAD) if fields[b"id"] == job_id.encode()]
    assert "engine crashed" in reason and "SIGSEGV" in reason
    assert r.xlen(keys.pool("llm", MODEL)) == 0
    assert r.xpending(keys.pool("llm", MODEL), keys.GROUP)["pending"] == 0


def restarted_and_serving(r: redis.Redis, worker: Proc, gateway: Gateway, restarts: int) -> None:
    wait_until(
        lambda: engine_stats(r, worker).get("process") == {"restarts": restarts, "up": True},
        30,
        "the engine to restart",
    )
    with gateway.client() as http:
        resp = http.post("/completion", json={"prompt": "Hello", "n_predict": 4, "model": MODEL})
    assert resp.status_code == 200 and resp.json()["tokens_predicted"] == 4


async def submit_and_wait(url: str, job: Job) -> list[bytes]:
    """Queue `job` as the api does and return its events up to the end."""
    redis_, writer, hub = connect(url), PipelinedConnection(url), EventHub(url, uuid.uuid4().hex)
    await hub.start()
    try:
        await asyncio.wait_for(hub.connected.wait(), 5)
        sub = await JobQueue(redis_, writer, hub, record_ttl=600).submit(job)
        events = [await sub.next(60)]
        while events[-1][:1] != END:
            events.append(await sub.next(60))
        return events
    finally:
        await hub.stop()
        await writer.close()
        await redis_.aclose()


@pytest.mark.parametrize("case", CRASHING_BODIES)
def test_a_body_that_crashes_llama_cpp_fails_its_job_once_and_the_worker_goes_on(
    worker: Proc, gateway: Gateway, redis_server: RedisServer, case: str
) -> None:
    r = redis_server.client()
    before, restarts = engine_process(worker), restarts_so_far(r, worker)
    endpoint, body = CRASHING_BODIES[case]
    job = Job(kind="llm", model=MODEL, endpoint=endpoint, body=body, stream=False)
    events = asyncio.run(submit_and_wait(redis_server.url, job))
    assert [e[:1] for e in events] == [START, END]  # one run
    status, error = parse_end(events[-1][1:])
    assert status == 502 and orjson.loads(error)["error"]["type"] == "engine_crashed"
    assert worker.alive() and not before.is_running()
    assert_poisoned(r, job.id)
    restarted_and_serving(r, worker, gateway, restarts=restarts + 1)
    assert engine_process(worker).pid != before.pid


def test_an_engine_killed_mid_job_fails_it_with_502_engine_crashed(
    worker: Proc, gateway: Gateway, redis_server: RedisServer
) -> None:
    r = redis_server.client()
    restarts = restarts_so_far(r, worker)
    body = {"prompt": "Write a long story:", "n_predict": 400, "ignore_eos": True, "model": MODEL}
    with gateway.client() as http, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, "/completion", json=body)
        wait_until(
            lambda: any(
                r.hmget(key, "model", "state") == [MODEL.encode(), b"active"] for key in r.scan_iter(keys.job("*"))
            ),
            30,
            "the job to run",
        )
        time.sleep(0.3)  # well into generation
        engine_process(worker).send_signal(signal.SIGSEGV)
        resp = pending.result(60)
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert error["type"] == "engine_crashed" and "SIGSEGV" in error["message"]
    assert worker.alive()
    assert_poisoned(r, resp.headers["x-job-id"])
    restarted_and_serving(r, worker, gateway, restarts=restarts + 1)


def test_a_crashed_job_is_answered_in_the_error_shape_of_the_clients_api(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    """Ollama's clients read {"error": message} and Anthropic's {"type": "error", "error": {...}}: jobs that
    failed on the engine are answered in theirs, not in llama.cpp's shape the worker reports it in. (A worker of
    its own: the module's has crashed often enough for its restarts to back off.)"""
    model = "crash-shapes"
    r = redis_server.client()
    own = cluster.worker("--model-name", model, "--slots", "2")
    calls = {
        "/api/generate": {"model": model, "prompt": "A story:", "stream": False, "options": {"num_predict": 400}},
        "/v1/messages": {"model": model, "max_tokens": 400, "messages": [{"role": "user", "content": "A story:"}]},
    }
    try:
        with gateway.client() as http, ThreadPoolExecutor(2) as pool:
            pending = {path: pool.submit(http.post, path, json=body) for path, body in calls.items()}
            wait_until(
                lambda: (
                    sum(
                        r.hmget(key, "model", "state") == [model.encode(), b"active"]
                        for key in r.scan_iter(keys.job("*"))
                    )
                    == 2
                ),
                60,
                "both jobs to run",
            )
            time.sleep(0.3)
            engine_process(own).send_signal(signal.SIGSEGV)  # one crash fails every job running on the engine
            ollama, anthropic = (pending[path].result(60) for path in calls)
    finally:
        own.stop()
    assert ollama.status_code == 502 and "SIGSEGV" in ollama.json()["error"], ollama.text
    error = anthropic.json()
    assert anthropic.status_code == 502 and error["type"] == "error", anthropic.text
    assert error["error"]["code"] == "engine_crashed" and "SIGSEGV" in error["error"]["message"]


def gone(process: psutil.Process) -> bool:
    """Ended (a zombie too: an orphan's reaper may be slow, or absent in a sandbox)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_engine_leaves_terminal_signals_to_its_worker_and_dies_with_it(worker: Proc, gateway: Gateway) -> None:
    engine = engine_process(worker)
    for sig in (signal.SIGINT, signal.SIGTERM):  # a Ctrl-C reaches the whole process group
        engine.send_signal(sig)
    with gateway.client() as http:
        resp = http.post("/completion", json={"prompt": "Hello", "n_predict": 2, "model": MODEL})
    assert resp.status_code == 200 and not gone(engine) and engine_process(worker).pid == engine.pid
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(10)
    wait_until(lambda: gone(engine), 10, "the engine to die with its worker")
