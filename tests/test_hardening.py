"""Hardening: body size cap, security headers, CORS for any origin or the origins configured, no prompts in logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from graycat.api.app import create_app
from graycat.config import load_settings
from tests.conftest import TOKEN, RedisServer

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _client(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, **env: str) -> TestClient:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("API_TOKENS", TOKEN)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return TestClient(create_app(load_settings()))


def test_bodies_over_the_cap_get_413_whether_sized_or_chunked(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(64):
            yield b"a" * 1024
        yield b'"}'

    with _client(redis_server, monkeypatch, MAX_BODY_MB="0.03") as c:
        sized = c.post("/completion", content=b"x" * 40_000, headers=AUTH)
        chunked = c.post("/v1/completions", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
        small = c.post("/completion", json={"prompt": ""}, headers=AUTH)
    assert sized.status_code == 413 and "MAX_BODY_MB" in sized.json()["error"]["message"]
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "request_too_large"
    assert small.status_code == 400  # under the cap: read and checked as usual


def test_security_headers_on_every_response(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with _client(redis_server, monkeypatch) as c:
        for resp in (c.get("/health"), c.post("/completion", json={}), c.get("/no-such-route")):
            assert resp.headers["x-content-type-options"] == "nosniff"
            assert resp.headers["x-frame-options"] == "DENY"
            assert resp.headers["referrer-policy"] == "no-referrer"


def test_cors_any_origin_without_credentials_by_default(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    preflight = {
        "Origin": "https://game.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,x-api-key,content-type",
    }
    with _client(redis_server, monkeypatch) as c:
        answer = c.options("/completion", headers=preflight)
        simple = c.post("/completion", json={"prompt": ""}, headers={**AUTH, "Origin": "https://game.example"})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://game.example"
    assert answer.headers["access-control-allow-headers"] == "authorization,x-api-key,content-type"
    assert "POST" in answer.headers["access-control-allow-methods"] and answer.headers["access-control-max-age"]
    assert "access-control-allow-credentials" not in answer.headers
    assert simple.status_code == 400 and simple.headers["access-control-allow-origin"] == "https://game.example"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


def test_cors_only_for_configured_origins(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    preflight = {
        "Origin": "https://game.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with _client(redis_server, monkeypatch, CORS_ORIGINS="https://game.example") as c:
        allowed = c.options("/completion", headers=preflight)
        other = c.options("/completion", headers={**preflight, "Origin": "https://evil.example"})
        other_simple = c.get("/health", headers={"Origin": "https://evil.example"})
        simple = c.get("/health", headers={"Origin": "https://game.example"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://game.example"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in other_simple.headers
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize("log_prompts", ["false", "true"])
def test_prompts_reach_the_logs_only_when_asked(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, log_prompts: str
) -> None:
    marker = f"secret-plot-twist-{log_prompts}"
    with (
        caplog.at_level(logging.DEBUG),
        _client(
            redis_server, monkeypatch, LOG_PROMPTS=log_prompts, QUEUE_TIMEOUT="1", DEFAULT_MODEL="hardening-nobody"
        ) as c,
    ):
        resp = c.post("/completion", json={"prompt": marker}, headers=AUTH)
    assert resp.status_code == 503  # no worker: the job was enqueued, then expired
    assert (marker in caplog.text) is (log_prompts == "true")


def test_metrics_without_a_token_answer_private_addresses_only(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    app = create_app(load_settings())
    with TestClient(app, client=("10.0.3.7", 40000)) as private:
        assert private.get("/metrics").status_code == 200
    with TestClient(app, client=("8.8.4.4", 40000)) as public:
        refused = public.get("/metrics")
    assert refused.status_code == 403 and "METRICS_TOKEN" in refused.json()["error"]["message"]
    monkeypatch.setenv("METRICS_TOKEN", "scrape")
    with TestClient(create_app(load_settings()), client=("8.8.4.4", 40000)) as public:
        assert public.get("/metrics", headers={"Authorization": "Bearer scrape"}).status_code == 200
        assert public.get("/metrics").status_code == 401
