"""llama.cpp native `/completion` through real api and worker processes, checked down to the bytes."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import orjson
import pytest

from graycat.queue import keys
from tests.conftest import TOKEN, Gateway, wait_until
from tests.rawhttp import ChunkedResponse

pytestmark = pytest.mark.e2e


def test_non_streaming_completion_returns_the_engines_answer(gateway: Gateway) -> None:
    with gateway.client() as http:
        resp = http.post(
            "/completion", json={"prompt": "Once upon a time", "n_predict": 12, "ignore_eos": True, "seed": 1}
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["content"] and body["stop"] is True
    assert body["tokens_predicted"] == 12 and body["tokens_evaluated"] > 0
    assert body["timings"]["predicted_n"] == 12
    assert resp.headers["x-job-id"] and resp.headers["x-worker-id"].startswith("llm-")
    assert resp.headers["x-request-id"]


def test_stream_sends_one_event_per_http_chunk(gateway: Gateway) -> None:
    resp = ChunkedResponse(
        gateway.base,
        "/completion",
        {"prompt": "The capital of France is", "n_predict": 16, "ignore_eos": True, "stream": True},
        TOKEN,
    )
    try:
        assert resp.status == 200
        # as llama-server writes them: no charset, no caching, no proxy buffering; the job's ids
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["cache-control"] == "no-cache" and resp.headers["x-accel-buffering"] == "no"
        assert resp.headers["x-job-id"] and resp.headers["x-worker-id"]
        chunks = list(resp.chunks())
    finally:
        resp.close()
    events = []
    for chunk in chunks:
        # exactly `data: <one JSON object>\n\n`: no comments, no event:/id: lines, no [DONE]
        assert chunk.startswith(b"data: ") and chunk.endswith(b"\n\n"), chunk
        assert chunk.count(b"\n") == 2, chunk
        events.append(orjson.loads(chunk[6:-2]))
    partial, final = events[:-1], events[-1]
    assert all(e["stop"] is False and e["content"] and isinstance(e["tokens"], list) for e in partial)
    # one event per token, except that llama.cpp joins the tokens of a character split across tokens
    assert 1 <= len(partial) <= 16 and sum(len(e["tokens"]) for e in partial) == 16
    assert final["content"] == "" and final["stop"] is True and final["tokens_predicted"] == 16
    assert b"[DONE]" not in b"".join(chunks)


def test_stream_text_equals_the_non_streamed_text_for_a_fixed_seed(gateway: Gateway) -> None:
    body = {"prompt": "Write a word:", "n_predict": 10, "seed": 42, "temperature": 0, "ignore_eos": True}
    with gateway.client() as http:
        whole = http.post("/completion", json=body).json()["content"]
        with http.stream("POST", "/completion", json={**body, "stream": True}) as resp:
            text = "".join(orjson.loads(line[6:])["content"] for line in resp.iter_lines() if line)
    assert text == whole


def test_n_predict_zero_returns_at_once(gateway: Gateway) -> None:
    with gateway.client() as http:
        resp = http.post("/completion", json={"prompt": "warm up", "n_predict": 0})
    assert resp.status_code == 200 and resp.json()["stop"] is True


def test_plural_alias_and_model_names(gateway: Gateway) -> None:
    with gateway.client() as http:
        for body in (
            {"prompt": "a", "n_predict": 1},
            {"prompt": "a", "n_predict": 1, "model": "default"},
            {"prompt": "a", "n_predict": 1, "model": "SmolLM2-135M-Instruct"},
        ):
            assert http.post("/completions", json=body).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b'{"prompt": "x", ', 400, "not valid JSON"),
        (b'["prompt"]', 400, "JSON object"),
        (b'{"prompt": "x", "n_predict": "lots"}', 400, "n_predict"),
        (b'{"n_predict": 3}', 400, "prompt"),
        (b'{"prompt": ""}', 400, "empty"),
        (b'{"prompt": "x", "model": "no-such-model"}', 404, "no-such-model"),
        (b'{"prompt": "x", "n_predict": 100000}', 400, "context"),
    ],
)
def test_bad_input_is_refused_before_anything_is_enqueued(
    gateway: Gateway, redis_server, body: bytes, status: int, needle: str
) -> None:
    pool = keys.pool("llm", "SmolLM2-135M-Instruct")
    before = redis_server.client().xinfo_stream(pool)["last-generated-id"]
    with gateway.client() as http:
        resp = http.post("/completion", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == status
    err = resp.json()["error"]
    assert err["code"] == status and needle in err["message"] and err["type"]
    assert redis_server.client().xinfo_stream(pool)["last-generated-id"] == before


def test_streaming_errors_come_before_the_stream(gateway: Gateway) -> None:
    resp = ChunkedResponse(gateway.base, "/completion", {"prompt": "x", "stream": True, "model": "nope"}, TOKEN)
    try:
        assert resp.status == 404
        assert resp.headers["content-type"] == "application/json"
        assert orjson.loads(resp.body())["error"]["code"] == 404
    finally:
        resp.close()


def test_client_disconnect_cancels_the_job(gateway: Gateway, redis_server) -> None:
    resp = ChunkedResponse(
        gateway.base,
        "/completion",
        {"prompt": "Tell me a very long story.", "n_predict": 450, "ignore_eos": True, "stream": True},
        TOKEN,
    )
    stream = resp.chunks()
    for _ in range(3):
        next(stream)
    job_id = resp.headers["x-job-id"]
    resp.close()
    r = redis_server.client()
    wait_until(lambda: r.hget(keys.job(job_id), "state") == b"cancelled", 10, "the job to be cancelled")
    produced = r.xlen(keys.events(job_id))
    time.sleep(0.5)
    assert r.xlen(keys.events(job_id)) == produced  # the engine stopped generating for it
    assert produced < 200
    with gateway.client() as http:  # the slot is free again: the next request is served at once
        assert http.post("/completion", json={"prompt": "ok", "n_predict": 2}).status_code == 200


def test_a_non_streaming_client_that_leaves_cancels_its_job(gateway: Gateway, redis_server) -> None:
    url = urlsplit(gateway.base)  # send the request, never read the answer
    body = orjson.dumps({"prompt": "Write a long essay.", "n_predict": 450, "ignore_eos": True})
    r = redis_server.client()
    jobs_before = set(r.scan_iter(keys.job("*")))
    sock = socket.create_connection((url.hostname, url.port))
    sock.sendall(
        b"POST /completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )

    def running() -> list[bytes]:
        return [k for k in set(r.scan_iter(keys.job("*"))) - jobs_before if r.hget(k, "state") == b"active"]

    wait_until(lambda: bool(running()), 10, "the job to start")
    [job_key] = running()
    sock.close()
    wait_until(lambda: r.hget(job_key, "state") == b"cancelled", 10, "the job to be cancelled")
    assert int(r.hget(job_key, "status")) == 499


def test_llm_for_unity_helper_routes(gateway: Gateway) -> None:
    with gateway.client() as http:
        assert http.post("/template", json={}).json() == {"template": "chatml"}
        props = http.post("/props", json={"stream": False}).json()
        assert props["default_generation_settings"]["n_ctx"] == 512
        assert http.get("/props").json() == props
        prompt = http.post(
            "/apply-template",
            json={
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                "stream": False,
            },
        ).json()["prompt"]
        assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>") and prompt.endswith("assistant\n")
        tokens = http.post("/tokenize", json={"content": "Hello world", "stream": False}).json()["tokens"]
        assert tokens and all(isinstance(t, int) for t in tokens)
        pieces = http.post("/tokenize", json={"content": "Hello world", "with_pieces": True}).json()["tokens"]
        assert "".join(p["piece"] for p in pieces) == "Hello world"
        assert http.post("/detokenize", json={"tokens": tokens}).json()["content"] == "Hello world"
        assert http.post("/tokenize", json={"content": 5}).status_code == 400
        assert http.post("/apply-template", json={"messages": []}).status_code == 400
        assert http.post("/props", json={"model": "nope"}).status_code == 404
