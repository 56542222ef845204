"""Workers as real processes: sharing a pool, stopping gracefully, and requests that find no worker."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from fastapi.testclient import TestClient

from graycat.api.app import create_app
from graycat.config import load_settings
from graycat.queue import keys
from graycat.workers.engines.llama_server import EmbeddedLlamaServer, default_model_path
from tests.conftest import ADMIN, TOKEN, Cluster, Gateway, RedisServer, wait_until
from tests.rawhttp import ChunkedResponse

pytestmark = pytest.mark.e2e


def test_two_workers_share_a_pool(cluster: Cluster, gateway: Gateway) -> None:
    name = "shared-pool-model"
    workers = [cluster.worker("--model-name", name, "--slots", "1") for _ in range(2)]
    body = {"prompt": "List some animals:", "n_predict": 24, "ignore_eos": True, "model": name}
    with gateway.client() as http, ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: http.post("/completion", json=body), range(6)))
    assert all(r.status_code == 200 and r.json()["tokens_predicted"] == 24 for r in responses)
    assert len({r.headers["x-worker-id"] for r in responses}) == 2
    for w in workers:
        assert w.stop() == 0


def test_sigterm_lets_the_worker_finish_its_job_and_claim_nothing_new(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    name = "sigterm-model"
    worker = cluster.worker("--model-name", name)
    resp = ChunkedResponse(
        gateway.base,
        "/completion",
        {"prompt": "Go on:", "n_predict": 120, "ignore_eos": True, "stream": True, "model": name},
        TOKEN,
    )
    stream = resp.chunks()
    next(stream)
    worker.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with gateway.client() as http:  # submitted after the stop request: must stay waiting
        late = ThreadPoolExecutor(1).submit(
            http.post, "/completion", json={"prompt": "late", "n_predict": 2, "model": name}
        )
        rest = [orjson.loads(c[6:]) for c in stream]
        resp.close()
        assert rest[-1]["stop"] is True and rest[-1]["tokens_predicted"] == 120
        assert worker.proc.wait(30) == 0
        r = redis_server.client()
        wait_until(lambda: r.xlen(keys.pool("llm", name)) == 1, 5, "the late job to be queued")
        [(_entry, fields)] = r.xrange(keys.pool("llm", name))
        assert r.hget(keys.job(fields[b"id"].decode()), "state") == b"pending"
        replacement = cluster.worker("--model-name", name)
        assert late.result(60).status_code == 200  # a new worker serves what waited
        replacement.stop()


def test_no_worker_for_the_model_ends_in_a_clear_503(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("API_TOKENS", TOKEN)
    monkeypatch.setenv("DEFAULT_MODEL", "model-without-workers")
    monkeypatch.setenv("QUEUE_TIMEOUT", "0.5")
    with TestClient(create_app(load_settings())) as c:
        resp = c.post("/completion", json={"prompt": "x"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 503 and resp.headers["retry-after"]
    assert "model-without-workers" in resp.json()["error"]["message"]
    r = redis_server.client()

    def states() -> list[bytes | None]:
        return [
            r.hget(key, "state")
            for key in r.scan_iter(keys.job("*"))
            if r.hget(key, "model") == b"model-without-workers"
        ]

    wait_until(lambda: states() == [b"expired"], 5, "expired state")
    assert r.xlen(keys.pool("llm", "model-without-workers")) == 0  # no worker that comes later starts it


def test_worker_relays_to_an_external_llama_server(
    cluster: Cluster, gateway: Gateway, redis_server: RedisServer
) -> None:
    server = EmbeddedLlamaServer(
        default_model_path(), alias="external", slots=1, ctx_per_slot=512, threads=1, gpu_layers=0
    )
    url = server.start()  # llama.cpp's own server, reached over HTTP like any llama-server
    worker = cluster.worker("--llama-url", url)
    name = "SmolLM2-135M-Instruct.Q4_1"  # read from the server's /props (its model file)
    info = orjson.loads(redis_server.client().hget(keys.MODELS, name))
    props = info.pop("props")
    assert info == {"kind": "llm", "n_ctx": 512, "slots": 1, "template": "chatml", "embeddings": False}
    assert props["model_path"] == name + ".gguf" and "params" in props["default_generation_settings"]
    with gateway.client() as http:
        resp = http.post("/completion", json={"prompt": "Hi", "n_predict": 4, "ignore_eos": True, "model": name})
        assert resp.status_code == 200 and resp.json()["tokens_predicted"] == 4
        assert resp.headers["x-worker-id"] in worker.output()
        with http.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": name, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "stream": True},
        ) as s:
            lines = [line for line in s.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
    assert worker.stop() == 0
    server.stop()


def test_queue_full_is_a_503_with_retry_after(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    model = "model-with-a-backlog"
    r = redis_server.client()
    for _ in range(3):
        r.xadd(keys.pool("llm", model), {"id": "x"})
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("API_TOKENS", TOKEN)
    monkeypatch.setenv("DEFAULT_MODEL", model)
    monkeypatch.setenv("MAX_WAITING", "3")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(load_settings())) as c:
        native = c.post("/completion", json={"prompt": "x"}, headers=auth)
        oai = c.post("/v1/completions", json={"prompt": "x"}, headers=auth)
    assert native.status_code == 503 and int(native.headers["retry-after"]) >= 1
    assert native.json()["error"]["code"] == 503 and "full" in native.json()["error"]["message"]
    assert oai.status_code == 503 and oai.json()["error"]["code"] == "queue_full"
    assert r.xlen(keys.pool("llm", model)) == 3  # nothing was added


def test_queue_status_and_models(gateway: Gateway) -> None:
    with gateway.client() as http:
        assert http.post("/completion", json={"prompt": "count me", "n_predict": 2}).status_code == 200
        summary = http.get("/queue/status").json()
        listing = http.get("/models").json()
    with gateway.client(ADMIN) as admin:
        status = admin.get("/queue/status").json()
    assert summary["workers"] and all("host" not in w and "jobs" not in w for w in summary["workers"])
    [pool] = [p for p in status["pools"] if p["model"] == "SmolLM2-135M-Instruct"]
    assert pool["kind"] == "llm" and pool["waiting"] == 0 and pool["active"] == 0
    assert pool["completed_1h"] >= 1 and pool["completed_24h"] >= pool["completed_1h"]
    assert pool["workers"] and set(pool["workers"]) <= {w["id"] for w in status["workers"]}
    worker = next(w for w in status["workers"] if w["id"] in pool["workers"])
    assert worker["kind"] == "llm" and worker["slots"] == 2 and worker["version"] and worker["heartbeat"]
    [text] = [m for m in listing["text"] if m["name"] == "SmolLM2-135M-Instruct"]
    assert text["workers"] >= 1 and text["n_ctx"] == 512 and listing["image"] == []
