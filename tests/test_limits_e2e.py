"""Managed tokens and their limits, shared by API replicas through Redis: requests per minute, requests in
flight, daily quotas, model scope, revocation and expiry; the admin routes and `graycat token`."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import ADMIN, MODEL, TOKEN, Cluster, Gateway, Proc, wait_until

pytestmark = pytest.mark.e2e
NULL = "limits-null"  # 8 tokens, 50 ms apart


@pytest.fixture(scope="module")
def null_worker(cluster: Cluster, gateway: Gateway) -> Proc:
    proc = cluster.spawn("limits", ["worker", "null", "--model-name", NULL, "--tokens", "8", "--token-delay-ms", "50"])
    wait_until(lambda: " ready: " in proc.output(), 30, "the null worker")
    return proc


def new_token(gateway: Gateway, name: str, **limits: object) -> str:
    with gateway.client(ADMIN) as admin:
        resp = admin.post("/admin/tokens", json={"name": name, **limits})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def test_the_limit_holds_across_two_replicas_hammered_in_parallel(cluster: Cluster, gateway: Gateway) -> None:
    _, second = cluster.api()
    secret = new_token(gateway, "two-replicas", rpm=30)

    def hit(i: int) -> httpx.Response:
        base = gateway.base if i % 2 else second
        return httpx.get(base + "/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=30)

    with ThreadPoolExecutor(16) as pool:  # a sliding window: it holds even when the burst crosses a clock minute
        answers = list(pool.map(hit, range(100)))
    admitted = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(admitted) == 30 and len(refused) == 70  # never more than the limit, whichever replica
    assert {r.headers["x-ratelimit-limit"] for r in admitted} == {"30"}
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in admitted) == list(range(30))
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in refused)
    assert all(1 <= int(r.headers["x-ratelimit-reset"]) <= 60 for r in admitted)
    assert refused[0].json()["error"]["code"] == "rate_limit_exceeded"


def test_api_tokens_are_not_limited_by_default(gateway: Gateway) -> None:
    """A game ships one token for all its players: nothing refuses its 61st request of a minute."""
    with gateway.client() as http, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: http.get("/v1/models"), range(80)))
    assert [r.status_code for r in answers] == [200] * 80
    assert "x-ratelimit-limit" not in answers[0].headers


def test_status_polls_need_no_place_in_flight(gateway: Gateway, null_worker: Proc) -> None:
    secret = new_token(gateway, "one-at-a-time", concurrency=1)
    body = {"prompt": "go", "model": NULL, "stream": True}
    with gateway.client(secret) as http, http.stream("POST", "/completion", json=body) as stream:
        lines = stream.iter_lines()  # kept: a dropped line iterator closes the stream, which cancels the job
        next(lines)  # the generation holds the token's one place while it streams
        assert http.get("/sdapi/v1/progress").status_code == 200  # its progress can still be watched
        assert http.get("/v1/models").status_code == 429  # anything else waits for the place
        assert any('"stop":true' in line for line in lines)


def test_status_polls_do_not_use_up_the_per_minute_allowance(gateway: Gateway) -> None:
    """A Unity client polls /sdapi/v1/progress every 0.5 s while it waits: 120 polls a minute at 60 rpm."""
    secret = new_token(gateway, "poller", rpm=2)
    with gateway.client(secret) as http:
        polls = [http.get("/sdapi/v1/progress").status_code for _ in range(4)]
        polls += [http.get("/jobs/no-such-job").status_code for _ in range(4)]
        counted = [http.get("/v1/models").status_code for _ in range(3)]
        late_poll = http.get("/sdapi/v1/progress")
    assert polls == [200] * 4 + [404] * 4 and counted == [200, 200, 429]
    assert late_poll.status_code == 200 and late_poll.headers["x-ratelimit-remaining"] == "0"


def test_requests_in_flight_are_capped_and_released_when_streams_end(gateway: Gateway, null_worker: Proc) -> None:
    secret = new_token(gateway, "in-flight", concurrency=2)
    body = {"prompt": "go", "model": NULL, "stream": True}

    def stream(_: int) -> int:  # one X-Request-ID for all: a client's id must not merge their places
        with httpx.stream(
            "POST",
            gateway.base + "/completion",
            json=body,
            timeout=30,
            headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "same-id"},
        ) as resp:
            resp.read()
            return resp.status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(stream, range(4)))
    assert statuses == [200, 200, 429, 429]
    assert stream(0) == 200  # both streams gave their places back when they ended


def test_daily_token_quota_and_usage(gateway: Gateway, null_worker: Proc) -> None:
    secret = new_token(gateway, "quota", daily_tokens=10)
    with gateway.client(secret) as http:
        first = http.post("/completion", json={"prompt": "x", "model": NULL})
        streamed = http.post("/completion", json={"prompt": "x", "model": NULL, "stream": True})
        over = http.post("/v1/completions", json={"prompt": "x", "model": NULL})
    assert first.status_code == 200 and streamed.status_code == 200  # 8, then 16 tokens: the quota is met
    assert over.status_code == 429 and over.json()["error"]["code"] == "quota_exceeded"
    with gateway.client(ADMIN) as admin:

        def usage() -> dict[str, int]:
            return next(u for u in admin.get("/admin/usage").json()["tokens"].values() if u["name"] == "quota")

        wait_until(lambda: usage().get("requests") == 3, 5, "the third request to be counted")  # counted after
        mine = usage()  # its answer went out
    assert mine["completion_tokens"] == 16 and mine["jobs"] == 2 and mine["requests"] == 3 and mine["errors"] == 1


def test_requests_another_replica_answered_are_in_the_usage_within_seconds(cluster: Cluster, gateway: Gateway) -> None:
    """Each api process adds up the requests it answers and writes them once a second, and once more when it
    stops: another replica's /admin/usage shows them all."""
    proc, second = cluster.api()
    secret = new_token(gateway, "counted-elsewhere")
    auth = {"Authorization": f"Bearer {secret}"}

    def counted() -> dict[str, int]:
        with gateway.client(ADMIN) as admin:
            found = admin.get("/admin/usage").json()["tokens"].values()
        return next((u for u in found if u["name"] == "counted-elsewhere"), {})

    for _ in range(2):
        assert httpx.get(second + "/v1/models", headers=auth, timeout=30).status_code == 200
    refused = httpx.post(second + "/v1/chat/completions", headers=auth, json={"messages": "none"}, timeout=30)
    assert refused.status_code == 400  # counted as an error
    wait_until(lambda: counted().get("requests") == 3, 5, "the other replica's counts")
    assert counted()["errors"] == 1
    assert httpx.get(second + "/v1/models", headers=auth, timeout=30).status_code == 200
    proc.stop()  # SIGTERM: a graceful stop (uvicorn then ends by the same signal)
    assert counted()["requests"] == 4  # written as it stopped


def test_a_token_limited_to_models(gateway: Gateway, null_worker: Proc) -> None:
    secret = new_token(gateway, "scoped", models=[NULL])
    with gateway.client(secret) as http:
        allowed = http.post("/completion", json={"prompt": "x", "model": NULL})
        refused = http.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
        )
    assert allowed.status_code == 200
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"


def test_admin_routes_need_an_admin_token(gateway: Gateway) -> None:
    with gateway.client(TOKEN) as user:
        assert user.get("/admin/tokens").status_code == 403
        assert user.post("/admin/tokens", json={"name": "x"}).status_code == 403
    with gateway.client(ADMIN) as admin:
        listed = admin.get("/admin/tokens").json()["tokens"]
    assert listed and all("token" not in t and len(t["fingerprint"]) == 16 for t in listed)


def test_token_commands_create_list_and_revoke(gateway: Gateway, redis_server) -> None:  # type: ignore[no-untyped-def]
    env = {"REDIS_URL": redis_server.url, "PATH": "/usr/bin:/bin"}

    def graycat(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "graycat", "token", *args], env=env, capture_output=True, text=True, timeout=30
        )

    created = graycat("create", "--name", "cli-made", "--rpm", "5", "--expires", "2999-01-01")
    secret = created.stdout.strip()
    assert created.returncode == 0 and secret.startswith("gc_")
    with gateway.client(secret) as http:
        assert http.get("/v1/models").headers["x-ratelimit-limit"] == "5"
    listing = graycat("list").stdout
    assert "cli-made" in listing and "active" in listing and secret not in listing
    assert graycat("revoke", "cli-made").returncode == 0
    with gateway.client(secret) as http:
        gone = http.get("/v1/models")
    assert gone.status_code == 401 and gone.json()["error"]["message"] == "this API token was revoked"
    assert graycat("revoke", "no-such").returncode == 1
