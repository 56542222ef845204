"""The job API against a real Redis and a real worker: submit, poll, events with resume, idempotency, cancel."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from graycat.api.app import create_app
from graycat.config import load_settings
from graycat.queue import keys
from tests.conftest import MODEL, TOKEN, Cluster, Gateway, RedisServer, wait_until

pytestmark = pytest.mark.e2e
OTHER = "another-tenant-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api(gateway: Gateway, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("API_TOKENS", f"{TOKEN},{OTHER}")
    monkeypatch.setenv("DEFAULT_MODEL", MODEL)  # the session's Redis has workers of many models
    with TestClient(create_app(load_settings()), headers=AUTH) as client:
        yield client


def wait_state(api: TestClient, job_id: str, state: str) -> dict[str, object]:
    wait_until(lambda: api.get(f"/jobs/{job_id}").json()["state"] == state, 30, f"state {state}")
    return api.get(f"/jobs/{job_id}").json()


def test_submit_then_read_the_result(api: TestClient) -> None:
    resp = api.post(
        "/jobs",
        json={
            "route": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
        },
    )
    assert resp.status_code == 202 and resp.headers["location"] == f"/jobs/{resp.json()['id']}"
    info = wait_state(api, resp.json()["id"], "completed")
    assert info["status"] == 200 and info["attempts"] == 1 and info["model"] == MODEL
    assert info["result"]["choices"][0]["message"]["content"]
    assert info["created"] <= info["started"] <= info["finished"]


def test_events_resume_from_last_event_id(api: TestClient) -> None:
    job_id = api.post(
        "/jobs",
        json={
            "route": "/completion",
            "body": {"prompt": "One, two,", "n_predict": 12, "ignore_eos": True, "stream": True},
        },
    ).json()["id"]
    wait_state(api, job_id, "completed")

    def read(headers: dict[str, str]) -> list[dict[str, str]]:
        events = []
        with api.stream("GET", f"/jobs/{job_id}/events", headers=headers) as resp:
            for block in resp.read().split(b"\n\n"):
                if block:
                    events.append(dict(line.split(": ", 1) for line in block.decode().split("\n")))
        return events

    everything = read({})
    assert [e["event"] for e in everything] == ["start"] + ["chunk"] * 13 + ["end"]
    assert orjson.loads(everything[-1]["data"])["status"] == 200
    resumed = read({"Last-Event-ID": everything[3]["id"]})
    assert resumed == everything[4:]


def test_idempotency_key_returns_the_same_job(api: TestClient, redis_server: RedisServer) -> None:
    body = {"route": "/completion", "body": {"prompt": "once", "n_predict": 2}}
    first = api.post("/jobs", json=body, headers={"Idempotency-Key": "order-42"}).json()
    again = api.post("/jobs", json=body, headers={"Idempotency-Key": "order-42"}).json()
    assert again["id"] == first["id"] and again["replayed"] is True
    other = api.post("/jobs", json=body, headers={"Idempotency-Key": "order-42", "Authorization": f"Bearer {OTHER}"})
    assert other.json()["id"] != first["id"]  # keys are per token


def test_only_the_creating_token_sees_a_job(api: TestClient) -> None:
    job_id = api.post("/jobs", json={"route": "/completion", "body": {"prompt": "mine", "n_predict": 2}}).json()["id"]
    stranger = {"Authorization": f"Bearer {OTHER}"}
    for method, path in (("GET", f"/jobs/{job_id}"), ("GET", f"/jobs/{job_id}/events"), ("DELETE", f"/jobs/{job_id}")):
        resp = api.request(method, path, headers=stranger)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == 404
    assert api.get("/jobs/0123456789abcdef0123456789abcdef").status_code == 404


def test_bad_job_requests(api: TestClient) -> None:
    assert api.post("/jobs", json={"route": "/nope", "body": {}}).status_code == 422
    bad = api.post("/jobs", json={"route": "/completion", "body": {"prompt": ""}})
    assert bad.status_code == 422 and "prompt" in bad.json()["error"]["message"]
    assert api.post("/jobs", json={"route": "/completion", "body": {"prompt": "x", "model": "nope"}}).status_code == 404


def test_cancel_a_waiting_and_a_running_job(
    api: TestClient, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = api.post(
        "/jobs",
        json={
            "route": "/completion",
            "body": {"prompt": "A long tale:", "n_predict": 450, "ignore_eos": True, "stream": True},
        },
    ).json()["id"]
    wait_state(api, running, "active")
    assert api.delete(f"/jobs/{running}").status_code == 200
    info = wait_state(api, running, "cancelled")
    assert info["status"] == 499
    produced = redis_server.client().xlen(keys.events(running))
    assert produced < 300  # stopped early

    monkeypatch.setenv("DEFAULT_MODEL", "a-model-nobody-serves")
    with TestClient(create_app(load_settings()), headers=AUTH) as idle:
        ids = [
            idle.post("/jobs", json={"route": "/completion", "body": {"prompt": "wait"}}).json()["id"] for _ in range(2)
        ]
        assert [idle.get(f"/jobs/{i}").json()["position"] for i in ids] == [0, 1]
        assert idle.delete(f"/jobs/{ids[0]}").json()["state"] == "cancelled"
        assert idle.get(f"/jobs/{ids[0]}").json()["status"] == 499
        with idle.stream("GET", f"/jobs/{ids[0]}/events") as events:  # its event stream ends too
            assert b"event: end" in events.read()
        assert idle.get(f"/jobs/{ids[1]}").json()["state"] == "pending"


def test_a_job_nobody_takes_expires_at_its_queue_deadline(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = "expiring-model"
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("API_TOKENS", TOKEN)
    monkeypatch.setenv("DEFAULT_MODEL", model)
    monkeypatch.setenv("QUEUE_TIMEOUTS", "llm=1")  # the deadline of this kind of job; QUEUE_TIMEOUT stays 120
    with TestClient(create_app(load_settings()), headers=AUTH) as api:
        job_id = api.post("/jobs", json={"route": "/completion", "body": {"prompt": "x"}}).json()["id"]
        info = wait_state(api, job_id, "expired")
    assert info["status"] == 504 and "deadline" in info["result"]["error"]["message"]
    assert redis_server.client().xlen(keys.pool("llm", model)) == 0


def test_a_job_past_its_run_deadline_fails(cluster: Cluster, api: TestClient) -> None:
    model = "deadline-model"
    worker = cluster.worker("--model-name", model, JOB_TIMEOUT="1")
    job_id = api.post(
        "/jobs",
        json={
            "route": "/completion",
            "body": {"prompt": "Go on and on:", "n_predict": 500, "ignore_eos": True, "model": model},
        },
    ).json()["id"]
    info = wait_state(api, job_id, "failed")
    assert info["status"] == 504 and "JOB_TIMEOUT" in info["result"]["error"]["message"]
    assert info["finished"] - info["started"] < 3
    worker.stop()
