"""Authentication on every route the app registers, request ids, public health and docs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from graycat import tokens
from graycat.api.app import create_app
from graycat.config import load_settings
from tests.conftest import TOKEN, RedisServer

# /metrics is guarded by its own METRICS_TOKEN (tests/test_metrics_e2e.py), not by the API tokens;
# /v1/images/files/... are unguessable, expiring links, as OpenAI's image URLs; the console's page and assets
# hold no data (it signs in with a token, which its calls carry)
PUBLIC = {
    "/",
    "/health",
    "/metrics",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
    "/v1/images/files/{file_id}.png",
    "/console",
    "/console/assets/{name}",
}


@pytest.fixture
def client(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("API_TOKENS", f"other-token,{TOKEN}")
    with TestClient(create_app(load_settings())) as c:
        yield c


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, including those of included routers (FastAPI may keep them lazily)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found.extend(_api_routes(route.original_router.routes))
    return found


def _protected(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    routes = [(m, r.path) for r in _api_routes(app.routes) for m in r.methods]
    return [(m, p) for m, p in routes if p not in PUBLIC]


async def _managed(redis_url: str) -> dict[str, str]:
    """A revoked and an expired managed token."""
    redis = aioredis.from_url(redis_url)
    try:
        revoked = await tokens.create(redis, tokens.TokenInfo(name="auth-revoked", fingerprint=""))
        await tokens.revoke(redis, "auth-revoked")
        expired = await tokens.create(
            redis, tokens.TokenInfo(name="auth-expired", fingerprint="", expires=time.time() - 1)
        )
    finally:
        await redis.aclose()
    return {"revoked": f"Bearer {revoked}", "expired": f"Bearer {expired}"}


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", "Bearer ", f"Basic {TOKEN}", "Bearer test-token", "revoked", "expired"]
)
def test_every_protected_route_refuses_a_bad_token(
    client: TestClient, header: str | None, redis_server: RedisServer
) -> None:
    if header in ("revoked", "expired"):
        header = asyncio.run(_managed(redis_server.url))[header]
    routes = _protected(client.app)
    assert len(routes) >= 5
    for method, path in routes:
        resp = client.request(method, path, headers={"Authorization": header} if header else {}, json={"prompt": "x"})
        assert resp.status_code == 401, (method, path, resp.text)
        if path.startswith("/sdapi/"):  # A1111 clients authenticate with HTTP Basic (the token as password)
            assert resp.headers["www-authenticate"].startswith("Basic") and resp.json()["detail"]
        else:
            assert resp.headers["www-authenticate"] == "Bearer"
            error = resp.json()["error"]
            assert error if path.startswith("/api/") else error["message"]  # Ollama's errors are a message


def test_no_tokens_configured_refuses_with_a_clear_message(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("API_TOKENS", "")
    with TestClient(create_app(load_settings())) as c:
        resp = c.post("/completion", json={"prompt": "x"}, headers={"Authorization": "Bearer anything"})
    assert resp.status_code == 401 and "API_TOKENS" in resp.json()["error"]["message"]


def test_health_and_docs_are_public(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["redis"] is True
    assert client.post("/health").status_code == 200
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/completion", "/v1/chat/completions", "/v1/completions", "/v1/models"} <= set(paths)


def test_request_id_on_every_response(client: TestClient) -> None:
    assert len(client.get("/health").headers["x-request-id"]) == 32
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert client.get("/nope").headers["x-request-id"]
    assert client.post("/completion").headers["x-request-id"]  # on errors too


def test_unknown_route_is_a_structured_404(client: TestClient) -> None:
    resp = client.get("/no/such/route")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == 404


def test_health_says_when_redis_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(load_settings())) as c:
        resp = c.get("/health")
        assert resp.status_code == 503
        assert resp.json()["redis"] is False and "Redis" in resp.json()["reason"]
        busy = c.post("/completion", json={"prompt": "x"}, headers={"Authorization": "Bearer anything"})
        assert busy.status_code == 503  # managed tokens and limits live in Redis: no guess either way
        assert busy.headers["retry-after"]
