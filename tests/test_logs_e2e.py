"""JSON logs: a request's line in the api and its job's line in the worker share the request id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Gateway, Proc, wait_until

pytestmark = pytest.mark.e2e


def json_lines(proc: Proc) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]


def test_request_id_follows_the_request_into_the_worker(gateway: Gateway) -> None:
    secret_prompt = "Zyxwv unusual prompt words"
    with gateway.client() as client:
        resp = client.post(
            "/completion", json={"prompt": secret_prompt, "n_predict": 3}, headers={"X-Request-ID": "trace-logs-0001"}
        )
    assert resp.status_code == 200
    job_id = resp.headers["x-job-id"]

    def worker_line() -> dict[str, Any] | None:
        return next((e for e in json_lines(gateway.worker) if e.get("job_id") == job_id), None)

    wait_until(lambda: worker_line() is not None, 10, "the worker's log line for the job")
    api_line = next(e for e in json_lines(gateway.api) if e.get("request_id") == "trace-logs-0001")
    job_line = worker_line()
    assert job_line is not None
    assert api_line["logger"] == "graycat.access" and api_line["route"] == "/completion"
    assert api_line["status"] == 200 and api_line["job_id"] == job_id and api_line["duration_ms"] > 0
    assert job_line["request_id"] == "trace-logs-0001"
    assert job_line["state"] == "completed" and job_line["kind"] == "llm" and job_line["status"] == 200
    assert job_line["run_ms"] > 0 and {"ts", "level", "msg"} <= job_line.keys()
    for proc in (gateway.api, gateway.worker):  # prompts and outputs are never logged
        assert secret_prompt not in proc.output()


def test_documented_pages_are_named_in_the_access_log(gateway: Gateway) -> None:
    with gateway.client(token=None) as client:
        for path in ("/docs", "/openapi.json", "/nowhere"):
            client.get(path, headers={"X-Request-ID": f"named-route{path.replace('/', '-')}"})

    def route(path: str) -> str | None:
        rid = f"named-route{path.replace('/', '-')}"
        return next((e["route"] for e in json_lines(gateway.api) if e.get("request_id") == rid), None)

    wait_until(lambda: route("/nowhere") is not None, 10, "the access log lines")
    assert route("/docs") == "/docs" and route("/openapi.json") == "/openapi.json"
    assert route("/nowhere") == "unmatched"  # scanners' paths still share one label
