"""The console's server side: `/` and `/console` for browsers (JSON at `/` for API clients), cached assets, the
token's rights, the live overview's event stream and the admins' dead-letter routes."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from graycat.jobs import Job
from graycat.queue import keys
from graycat.tokens import fingerprint
from tests.conftest import ADMIN, MODEL, TOKEN, Cluster, Gateway, RedisServer, free_port, wait_until

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
pytestmark = pytest.mark.e2e


def snapshots(client: httpx.Client, count: int) -> Iterator[dict]:  # type: ignore[type-arg]
    """The first `count` snapshots of GET /console/events."""
    with client.stream("GET", "/console/events") as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                assert event == "snapshot", line
                yield json.loads(line[6:])
                count -= 1
                if not count:
                    return


def test_root_is_json_for_api_clients_and_the_console_for_browsers(gateway: Gateway) -> None:
    for accept in (None, "*/*", "application/json", "application/json, text/html;q=0.5"):
        resp = httpx.get(gateway.base + "/", headers={"Accept": accept} if accept else {})
        assert resp.status_code == 200 and resp.json()["name"] == "Graycat AI Server", accept
        assert resp.json()["console"] == "/console"
    page = httpx.get(gateway.base + "/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Vary" in page.headers and "script-src 'self'" in page.headers["content-security-policy"]
    assert page.text == httpx.get(gateway.base + "/console").text
    assert "<script>" not in page.text and "https://" not in page.text  # nothing inline, nothing from elsewhere


def test_assets_are_versioned_and_cached(gateway: Gateway) -> None:
    page = httpx.get(gateway.base + "/console")
    assert page.headers["cache-control"] == "no-cache"
    again = httpx.get(gateway.base + "/console", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and not again.content
    total = 0
    for name in ("console.js", "charts.js", "console.css", "icon.svg"):
        marker = f"/console/assets/{name}?v="
        assert marker in page.text, name
        version = page.text.split(marker, 1)[1].split('"', 1)[0]
        asset = httpx.get(gateway.base + marker + version)
        assert asset.status_code == 200 and asset.headers["etag"] == f'"{version}"'
        assert "immutable" in asset.headers["cache-control"]
        assert httpx.get(gateway.base + f"/console/assets/{name}").headers["cache-control"] == "no-cache"
        assert httpx.get(gateway.base + marker + version, headers={"If-None-Match": f'"{version}"'}).status_code == 304
        total += len(asset.content)
    assert total < 200_000  # a few hundred KB at most, as the console promises
    missing = httpx.get(gateway.base + "/console/assets/nope.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404


def test_session_tells_the_tokens_rights(gateway: Gateway) -> None:
    with gateway.client() as user, gateway.client(ADMIN) as admin, gateway.client("wrong") as wrong:
        assert user.get("/console/session").json()["admin"] is False
        assert admin.get("/console/session").json()["admin"] is True
        refused = wrong.get("/console/session")
        assert refused.status_code == 401 and refused.json()["error"]["message"] == "invalid API token"
        assert wrong.get("/console/events").status_code == 401


def test_events_stream_snapshots_of_pools_and_workers(gateway: Gateway) -> None:
    with gateway.client() as user:
        assert user.post("/completion", json={"prompt": "Hi", "n_predict": 2}).status_code == 200
        first, second = snapshots(user, 2)
    assert first["admin"] is False and "history" in first and "history" not in second
    assert 0.5 < second["time"] - first["time"] < 3  # one a second
    pool = next(p for p in first["pools"] if p["kind"] == "llm" and p["model"] == MODEL)
    assert pool["completed"] >= 1 and {"waiting", "active", "failed"} <= set(pool)
    assert sum(first["history"][f"llm/{MODEL}"]) + pool["completed"] >= 1
    worker = next(w for w in first["workers"] if MODEL in w["models"])
    assert worker["slots"] == 2 and 0 <= worker["heartbeat_age_s"] < 5
    assert "tokens" in worker["generated"]  # llama.cpp's count of generated tokens: the console's tokens/s
    wait = first["waits"][f"llm/{MODEL}"]  # this api process's queue waits of the last 15 minutes
    assert wait["count"] >= 1 and 0 <= wait["p50"] <= wait["p95"] < 30
    assert not [a for a in first["alerts"] if MODEL in a["summary"]]  # a served pool alerts nothing
    assert "host" not in worker and "gpus" not in worker and "dead_letters" not in first  # admins only
    with gateway.client(ADMIN) as admin:
        (snap,) = snapshots(admin, 1)
    assert snap["admin"] is True and isinstance(snap["dead_letters"], int)
    assert all("host" in w and "gpus" in w for w in snap["workers"])


def test_alerts_fire_from_the_snapshot_as_the_prometheus_rules_test_them(gateway: Gateway, cluster: Cluster) -> None:
    r = redis.Redis.from_url(cluster.redis.url)
    job = Job(kind="llm", model="orphan-console", endpoint="/completion", body=b"{}", stream=False)
    job.created -= 40  # queued 40 s ago, in a pool that no worker serves
    r.xadd(keys.pool("llm", "orphan-console"), job.to_fields(), id=f"{int(job.created * 1000)}-0")  # type: ignore[arg-type]
    r.sadd(keys.POOLS, keys.pool("llm", "orphan-console"))  # registered, as the api registers a queued job's pool
    entry, _ = add_dead_letter(cluster.redis.url, "someone")
    try:
        with gateway.client() as user, gateway.client(ADMIN) as admin:
            *_, seen = snapshots(user, 2)  # the second: read after the job was queued, whatever was cached
            (seen_by_admin,) = snapshots(admin, 1)
        mine = {a["alert"]: a for a in seen["alerts"] if "orphan-console" in a["summary"]}
        assert set(mine) == {"GraycatNoWorkerForModel", "GraycatQueueWaitHigh"}
        assert mine["GraycatNoWorkerForModel"]["severity"] == "critical"
        assert "llm/orphan-console (1 waiting)" in mine["GraycatNoWorkerForModel"]["summary"]
        assert all(a["alert"] != "GraycatDeadLetters" for a in seen["alerts"])  # dead letters: admins only
        assert any(a["alert"] == "GraycatDeadLetters" for a in seen_by_admin["alerts"])
    finally:
        r.delete(keys.pool("llm", "orphan-console"))
        r.srem(keys.POOLS, keys.pool("llm", "orphan-console"))
        r.xdel(keys.DEAD, entry)


def test_events_streams_are_bounded_per_token(cluster: Cluster, gateway: Gateway) -> None:
    _, base = cluster.api(JOB_STREAMS_PER_TOKEN="1")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as user:
        with user.stream("GET", "/console/events") as held:
            assert held.status_code == 200
            second = user.get("/console/events")
            assert second.status_code == 429 and "JOB_STREAMS_PER_TOKEN" in second.json()["error"]["message"]

        def reopened() -> bool:
            with user.stream("GET", "/console/events") as again:
                return again.status_code == 200

        wait_until(reopened, 5, "the stream's place to come back once it closed")


def add_dead_letter(redis_url: str, owner: str, body: bytes = b"{}") -> tuple[str, str]:
    """A completion job kept in the dead-letter stream as a worker would keep it: (its entry, its job id)."""
    job = Job(kind="llm", model=MODEL, endpoint="/completion", body=body, stream=False, owner=owner)
    fields = {
        **job.to_fields(),
        "pool": keys.pool("llm", MODEL),
        "deliveries": 3,
        "reason": "the worker stopped each time",
        "at": repr(time.time()),
    }
    return redis.Redis.from_url(redis_url).xadd(keys.DEAD, fields).decode(), job.id


def test_dead_letters_listed_and_dropped_by_admins_only(gateway: Gateway, cluster: Cluster) -> None:
    entry, job_id = add_dead_letter(cluster.redis.url, "someone")
    with gateway.client(ADMIN) as admin, gateway.client() as user:
        assert user.get("/admin/dead-letters").status_code == 403
        listed = admin.get("/admin/dead-letters", params={"count": 5}).json()
        mine = next(d for d in listed["dead_letters"] if d["entry"] == entry)
        assert mine["job"] == job_id and mine["deliveries"] == 3 and mine["reason"] == "the worker stopped each time"
        assert mine["owner"] == "someone" and "b" not in mine and "body" not in mine and listed["total"] >= 1
        assert admin.delete(f"/admin/dead-letters/{entry}").json() == {"dropped": entry}
        assert admin.delete(f"/admin/dead-letters/{entry}").status_code == 404
        assert admin.delete("/admin/dead-letters/not-an-id").status_code == 404
        assert admin.get("/admin/dead-letters", params={"count": 0}).status_code == 422
    assert not redis.Redis.from_url(cluster.redis.url).xrange(keys.DEAD, entry, entry)


def test_a_dead_letter_runs_again_as_a_new_job_of_its_owner(gateway: Gateway, cluster: Cluster) -> None:
    entry, job_id = add_dead_letter(cluster.redis.url, fingerprint(TOKEN), b'{"prompt": "Hi", "n_predict": 3}')
    with gateway.client(ADMIN) as admin, gateway.client() as user:
        assert user.post(f"/admin/dead-letters/{entry}/retry").status_code == 403
        made = admin.post(f"/admin/dead-letters/{entry}/retry")
        assert made.status_code == 202 and made.json()["retried"] == entry and made.json()["id"] != job_id
        new = made.json()["id"]
        wait_until(lambda: user.get(f"/jobs/{new}").json()["state"] == "completed", 30, "the job run again")
        result = user.get(f"/jobs/{new}").json()
        assert result["status"] == 200 and result["result"]["tokens_predicted"] == 3
        assert admin.post(f"/admin/dead-letters/{entry}/retry").status_code == 404  # it left the stream
        assert admin.get(f"/jobs/{new}").status_code == 404  # the owner's job, not the admin's


def test_events_say_when_redis_is_unreachable_and_resume(tmp_path: Path) -> None:
    own = RedisServer(free_port(), tmp_path)
    own.start()
    cluster = Cluster(own, tmp_path)
    try:
        _, base = cluster.api()
        with (
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as user,
            user.stream("GET", "/console/events") as resp,
        ):
            lines = (line for line in resp.iter_lines() if line.startswith("event: "))
            assert next(lines) == "event: snapshot"
            own.stop()
            assert "event: unavailable" in itertools.islice(lines, 5)
            own.start()
            assert "event: snapshot" in itertools.islice(lines, 10)
    finally:
        cluster.stop_all()
        own.stop()
