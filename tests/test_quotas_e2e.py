"""What one token may take of the service: daily quotas reserved before a job and settled after (streams closed
early, several prompts and parallel requests included), prompts per request and the engine slots they take,
and jobs in flight per token. Real `graycat` processes: the session's SmolLM2 worker (2 slots), a null worker,
a tiny SD worker."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, Cluster, Gateway, Proc, wait_until
from tests.tiny_sd import build_pipeline

pytestmark = pytest.mark.e2e
NULL = "quotas-null"  # 20 tokens, 100 ms apart: a job runs for 2 s


@pytest.fixture(scope="module")
def null_worker(cluster: Cluster, gateway: Gateway) -> Iterator[Proc]:
    proc = cluster.spawn(
        "quotas", ["worker", "null", "--model-name", NULL, "--tokens", "20", "--token-delay-ms", "100"]
    )
    wait_until(lambda: " ready: " in proc.output(), 30, "the null worker")
    yield proc
    proc.stop()


def new_token(gateway: Gateway, name: str, **limits: object) -> str:
    with gateway.client(ADMIN) as admin:
        resp = admin.post("/admin/tokens", json={"name": name, **limits})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def usage(gateway: Gateway, name: str) -> dict[str, int]:
    with gateway.client(ADMIN) as admin:
        found = [u for u in admin.get("/admin/usage").json()["tokens"].values() if u["name"] == name]
    return found[0] if found else {}


def settled(gateway: Gateway, name: str, jobs: int) -> dict[str, int]:
    """The token's usage once `jobs` of its jobs have ended."""
    wait_until(lambda: usage(gateway, name).get("jobs", 0) >= jobs, 60, f"{jobs} jobs of {name} to end")
    return usage(gateway, name)


def test_a_stream_closed_just_before_its_end_counts_what_it_made(gateway: Gateway) -> None:
    secret = new_token(gateway, "early-close", daily_tokens=10_000)
    native = {"prompt": "Once upon a time", "n_predict": 60, "ignore_eos": True, "stream": True}
    chat = {
        "messages": [{"role": "user", "content": "Tell a story"}],
        "max_tokens": 60,
        "ignore_eos": True,
        "stream": True,
    }
    read = 0
    with gateway.client(secret) as http:
        for route, body, marker in (
            ("/completion", native, '"content":"'),
            ("/v1/chat/completions", chat, '"content":"'),
        ):
            seen = 0
            with http.stream("POST", route, json=body) as stream:
                assert stream.status_code == 200
                for line in stream.iter_lines():
                    seen += marker in line and '"content":""' not in line
                    if seen == 45:
                        break  # the client closes the stream 15 tokens before its end
            read += seen
    counted = settled(gateway, "early-close", 2)
    assert counted["jobs_cancelled"] == 2
    assert read <= counted["completion_tokens"] <= 120  # what reached the client counts (not 0)


def test_every_prompt_of_a_request_counts(gateway: Gateway) -> None:
    secret = new_token(gateway, "many-prompts", daily_tokens=10_000)
    with gateway.client(secret) as http:
        native = http.post("/completion", json={"prompt": [[1], [2], [3]], "n_predict": 5, "ignore_eos": True})
        streamed = http.post(
            "/completion", json={"prompt": ["a", "b"], "n_predict": 5, "ignore_eos": True, "stream": True}
        )
        oai = http.post("/v1/completions", json={"prompt": ["a", "b", "c", "d"], "max_tokens": 5, "ignore_eos": True})
    assert native.status_code == streamed.status_code == oai.status_code == 200
    assert [r["tokens_predicted"] for r in native.json()] == [5, 5, 5] and len(oai.json()["choices"]) == 4
    assert settled(gateway, "many-prompts", 3)["completion_tokens"] == 15 + 10 + 20


def test_completions_asked_for_in_any_form_are_reserved(gateway: Gateway) -> None:
    """`n_cmpl: 2.0` made two completions (llama.cpp reads 2.0 as 2) that reserved, and took a slot for, one;
    Anthropic's and the Responses API's answers are one message, so the extra completions llama.cpp made for
    their `n` were never reserved (a token went past its quota) and a Responses answer of several was a 500."""
    secret = new_token(gateway, "float-n", daily_tokens=15)
    chat = {"messages": [{"role": "user", "content": "x"}], "ignore_eos": True}
    with gateway.client(secret) as http:
        native = http.post("/completion", json={"prompt": "x", "n_predict": 5, "n_cmpl": 2.0, "ignore_eos": True})
        openai = http.post("/v1/chat/completions", json={**chat, "max_tokens": 5, "n_cmpl": 2.0})
        messages = http.post("/v1/messages", json={**chat, "max_tokens": 5, "n": 2})
        responses = http.post("/v1/responses", json={"input": "x", "max_output_tokens": 5, "n_cmpl": 2})
        huge = http.post("/completion", content=b'{"prompt": "x", "n_cmpl": 1e400}')
    assert native.status_code == 200 and len(native.json()) == 2, native.text
    assert openai.status_code == 429 and "needs 10 generated tokens" in openai.json()["error"]["message"]
    assert messages.status_code == 400 and messages.json()["error"]["message"].startswith("n: "), messages.text
    assert responses.status_code == 400 and responses.json()["error"]["param"] == "n_cmpl", responses.text
    assert huge.status_code == 400 and "(MAX_PROMPTS)" in huge.json()["error"]["message"], huge.text
    assert settled(gateway, "float-n", 1)["completion_tokens"] == 10


def test_parallel_requests_cannot_spend_more_than_the_quota(gateway: Gateway) -> None:
    secret = new_token(gateway, "parallel", daily_tokens=5)

    def ask(body: dict[str, Any]) -> httpx.Response:
        with gateway.client(secret) as http:
            return http.post("/completion", json={"prompt": "x", "ignore_eos": True, **body})

    with ThreadPoolExecutor(4) as pool:
        capped = list(pool.map(ask, [{"n_predict": 48}] * 4))  # each may make more than the whole quota
        uncapped = list(pool.map(ask, [{}] * 4))  # each reserves what is left, and is capped to it
    assert [r.status_code for r in capped] == [429] * 4
    assert capped[0].json()["error"]["message"].startswith("daily quota: this request needs 48 generated tokens")
    made = [r.json()["tokens_predicted"] for r in uncapped if r.status_code == 200]
    assert made == [5] and sorted(r.status_code for r in uncapped) == [200, 429, 429, 429]
    assert settled(gateway, "parallel", 1)["completion_tokens"] == 5


def test_a_request_asks_for_at_most_max_prompts(gateway: Gateway) -> None:
    with gateway.client() as http:
        many = http.post("/completion", json={"prompt": [[1]] * 16, "n_predict": 48, "ignore_eos": True})
        chat = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "n": 9})
        job = http.post("/jobs", json={"route": "/v1/completions", "body": {"prompt": ["a"] * 9}})
    assert chat.status_code == 400 and chat.json()["error"]["code"] == "too_many_prompts", chat.text
    for refused in (many, job):
        assert refused.status_code == 400 and "(MAX_PROMPTS)" in refused.json()["error"]["message"], refused.text
    assert "16 completions" in many.json()["error"]["message"]


def test_each_prompt_takes_an_engine_slot(gateway: Gateway) -> None:
    """A request of two prompts fills the two-slot worker: another tenant's request waits in the queue for a
    free slot, rather than being claimed and queued by the engine behind the prompts."""
    with gateway.client() as http:
        big = http.post(
            "/jobs", json={"route": "/completion", "body": {"prompt": [[1], [2]], "n_predict": 48, "ignore_eos": True}}
        ).json()["id"]
        wait_until(lambda: http.get(f"/jobs/{big}").json()["state"] != "pending", 30, "the big job to start")
        small = http.post("/jobs", json={"route": "/completion", "body": {"prompt": "x", "n_predict": 1}}).json()["id"]

        def done(job_id: str) -> dict[str, Any]:
            wait_until(lambda: http.get(f"/jobs/{job_id}").json()["state"] == "completed", 60, "the job to end")
            return dict(http.get(f"/jobs/{job_id}").json())

        first, second = done(big), done(small)
    assert second["started"] >= first["finished"]


def test_jobs_submitted_hold_a_place_in_flight_until_they_end(gateway: Gateway, null_worker: Proc) -> None:
    secret = new_token(gateway, "one-job", concurrency=1)
    body = {"route": "/completion", "body": {"prompt": "x", "model": NULL}}
    with gateway.client(secret) as http:
        first = http.post("/jobs", json=body)
        second = http.post("/jobs", json=body)
        job_id = first.json()["id"]
        watched = http.get(f"/jobs/{job_id}").status_code  # its own job can still be watched and cancelled
        cancelled = http.delete(f"/jobs/{job_id}")
        wait_until(lambda: http.get(f"/jobs/{job_id}").json()["state"] == "cancelled", 10, "the cancel")
        third = http.post("/jobs", json=body)  # the cancelled job gave its place back
        fourth = http.post("/jobs", json=body)
        third_id = third.json()["id"]
        wait_until(lambda: http.get(f"/jobs/{third_id}").json()["state"] == "completed", 30, "the third job")
        fifth = http.post("/jobs", json=body)  # and so did the finished one
    assert first.status_code == 202 and watched == 200 and cancelled.status_code == 200
    assert second.status_code == 429 and "1 requests or jobs in flight" in second.json()["error"]["message"]
    assert third.status_code == 202 and fourth.status_code == 429 and fifth.status_code == 202


@pytest.fixture(scope="module")
def tiny_sd(cluster: Cluster, gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    root: Path = tmp_path_factory.mktemp("quota-sd")
    build_pipeline(root / "models" / "Stable-diffusion" / "tiny")
    worker = cluster.sd_worker(root)
    yield worker
    worker.stop()


def test_an_image_batch_must_fit_the_daily_images(gateway: Gateway, tiny_sd: Proc) -> None:
    secret = new_token(gateway, "images", daily_images=2)
    small = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2}
    with gateway.client(secret) as http:
        batch = http.post("/sdapi/v1/txt2img", json={**small, "batch_size": 4})
        unsent = http.post("/sdapi/v1/txt2img", json={**small, "batch_size": 2, "send_images": False})
        more = http.post("/sdapi/v1/txt2img", json=small)
    assert batch.status_code == 429 and batch.json()["code"] == "quota_exceeded", batch.text[:300]
    assert unsent.status_code == 200 and unsent.json()["images"] == []
    assert more.status_code == 429  # the two images not sent still counted
    assert settled(gateway, "images", 1)["images"] == 2
