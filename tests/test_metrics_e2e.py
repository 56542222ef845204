"""`/metrics`: the api's own figures, the cluster's from Redis and each worker's from its heartbeat."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from graycat.jobs import Job
from graycat.queue import keys
from graycat.tokens import fingerprint
from tests.conftest import MODEL, TOKEN, Cluster, Gateway, RedisServer, free_port, wait_until

pytestmark = pytest.mark.e2e


def scrape(base: str, token: str | None = None) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> [(labels, value)] of one scrape."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.get(base + "/metrics", headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    matching = [v for lab, v in samples.get(name, []) if all(lab.get(k) == want for k, want in labels.items())]
    assert matching, f"no sample {name} {labels}; have {sorted(samples)}"
    return sum(matching)


def test_requests_jobs_and_workers_are_counted(gateway: Gateway) -> None:
    before = scrape(gateway.base)
    done_before = (
        value(before, "graycat_jobs_total", kind="llm", model=MODEL, outcome="completed")
        if "graycat_jobs_total" in before
        else 0.0
    )
    with gateway.client() as client:
        for _ in range(2):
            resp = client.post("/completion", json={"prompt": "Hi", "n_predict": 4, "stream": True})
            assert resp.status_code == 200
        assert client.post("/v1/completions", json={"prompt": 5}).status_code == 400
    assert httpx.get(gateway.base + "/no/such/path").status_code == 404

    def tokens_reported() -> bool:  # the worker's heartbeat carries its engine's counters every 2 s
        return value(scrape(gateway.base), "graycat_worker_tokens_predicted_total") >= 8

    wait_until(tokens_reported, 15, "the worker's token count in its heartbeat")
    after = scrape(gateway.base)
    assert value(after, "graycat_http_requests_total", route="/completion", dialect="llamacpp", status="200") >= 2
    assert value(after, "graycat_http_requests_total", route="/v1/completions", dialect="openai", status="400") >= 1
    assert value(after, "graycat_http_requests_total", route="unmatched", status="404") >= 1
    assert value(after, "graycat_http_response_start_seconds_count", route="/completion") >= 2
    assert value(after, "graycat_http_requests_in_flight") >= 1  # the scrape itself
    assert value(after, "graycat_time_to_first_token_seconds_count", kind="llm", model=MODEL) >= 2
    assert value(after, "graycat_queue_wait_seconds_count", kind="llm", model=MODEL) >= 2
    assert value(after, "graycat_jobs_total", kind="llm", model=MODEL, outcome="completed") >= done_before + 2
    assert value(after, "graycat_queue_waiting", kind="llm", model=MODEL) == 0
    assert value(after, "graycat_workers_up", kind="llm", model=MODEL) >= 1
    assert value(after, "graycat_redis_up") == 1
    worker_ids = {lab["worker"] for lab, _ in after["graycat_worker_info"]}
    wid = next(w for w in worker_ids if f"worker {w} ready" in gateway.worker.output())
    assert value(after, "graycat_worker_slots", worker=wid) == 2
    assert value(after, "graycat_worker_jobs_total", worker=wid, outcome="completed") >= 2
    assert value(after, "graycat_worker_prompt_tokens_total", worker=wid) > 0
    assert value(after, "graycat_worker_tokens_predicted_seconds_total", worker=wid) > 0
    mine = fingerprint(TOKEN)  # per-token usage, as /admin/usage gives it
    assert value(after, "graycat_token_usage_today", token=mine, counted="requests") >= 3
    assert value(after, "graycat_token_usage_today", token=mine, counted="completion_tokens") >= 8


def test_a_waiting_job_shows_its_age_and_a_pool_without_workers(gateway: Gateway, redis_server: RedisServer) -> None:
    r = redis_server.client()
    job = Job(kind="llm", model="orphan", endpoint="/completion", body=b"{}", stream=False)
    job.created -= 5  # queued 5 s ago, in a pool that no worker serves
    r.xadd(keys.pool("llm", "orphan"), job.to_fields(), id=f"{int(job.created * 1000)}-0")  # type: ignore[arg-type]
    r.sadd(keys.POOLS, keys.pool("llm", "orphan"))  # registered, as the api registers a queued job's pool
    try:
        samples = scrape(gateway.base)
        assert value(samples, "graycat_queue_waiting", kind="llm", model="orphan") == 1
        assert value(samples, "graycat_queue_oldest_wait_seconds", kind="llm", model="orphan") >= 5
        assert value(samples, "graycat_workers_up", kind="llm", model="orphan") == 0
    finally:
        r.delete(keys.pool("llm", "orphan"))
        r.srem(keys.POOLS, keys.pool("llm", "orphan"))


def test_metrics_token_guards_the_endpoint_when_set(cluster: Cluster) -> None:
    _, base = cluster.api(METRICS_TOKEN="scrape-me")
    assert httpx.get(base + "/metrics", timeout=10).status_code == 401
    assert (
        httpx.get(base + "/metrics", headers={"Authorization": "Bearer test-token-1"}, timeout=10).status_code == 401
    )  # an API token is not a metrics token
    assert value(scrape(base, "scrape-me"), "graycat_redis_up") == 1


def test_a_reachable_worker_serves_its_own_metrics(cluster: Cluster) -> None:
    port = free_port()
    worker = cluster.spawn(
        "worker",
        ["worker", "null", "--model-name", "metrics-null", "--slots", "3", "--metrics-port", str(port)],
        METRICS_TOKEN="scrape-me",
    )
    try:
        wait_until(lambda: " ready: " in worker.output(), 30, "the null worker")
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/metrics", timeout=10).status_code == 401
        samples = scrape(base, "scrape-me")
        wid = next(lab["worker"] for lab, _ in samples["graycat_worker_info"])
        assert f"worker {wid} ready" in worker.output()
        assert value(samples, "graycat_worker_slots", worker=wid) == 3
        assert value(samples, "graycat_worker_slots_busy", worker=wid) == 0
    finally:
        worker.stop()
