"""A real Prometheus, run with the shipped scrape settings and alert rules, scrapes a running api and worker
while traffic flows; then every PromQL expression of the dashboards and alert rules is run against it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from graycat.metrics import GPU_GAUGES, ApiMetrics
from tests.conftest import TOKEN, Cluster, Gateway, free_port, wait_until
from tests.tiny_sd import build_models_folder

pytestmark = pytest.mark.e2e

MONITORING = Path(__file__).resolve().parent.parent / "deploy" / "monitoring"
METRICS_TOKEN = "prometheus-test-scraper"
# Grafana's variables, as Grafana would fill them for a short range over a 1 s scrape interval.
GRAFANA_VARIABLES = {"$__rate_interval": "15s", "$__range": "1m", "$__interval": "1s"}
# Series that only a worker with an NVIDIA GPU reports; this machine has none.
GPU_SERIES = {f"graycat_gpu_{name}" for name in GPU_GAUGES}
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expr) of every Prometheus target of every shipped dashboard."""
    found = []
    for path in sorted((MONITORING / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if (target.get("datasource") or panel["datasource"])["type"] == "prometheus":
                    expr = target["expr"]
                    for name, value in GRAFANA_VARIABLES.items():
                        expr = expr.replace(name, value)
                    found.append((f"{path.stem}: {panel['title']}", expr))
    return found


def alert_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())
    return [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers outside strings, label matchers, ranges and grouping
    clauses that are neither functions nor keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        following = text[match.end() :].lstrip()[:1]
        if word.lower() not in _KEYWORDS and following != "(":
            names.add(word)
    return names


def test_series_every_replica_exports_are_counted_once() -> None:
    """Worker and pool series come from Redis, so every api replica exports the same copy: a query must keep
    one copy (max / min by) before adding them up, or three replicas show three times the work."""
    local = {family.name for family in ApiMetrics().registry.collect()} | {
        "graycat_redis_up",
        "graycat_redis_read_seconds",
    }
    for where, expr in dashboard_queries() + alert_queries():
        shared = {
            name
            for name in metric_names(expr)
            if name.startswith("graycat_") and re.sub(r"_(bucket|sum|count|total|created)$", "", name) not in local
        }
        assert not shared or re.search(r"\b(max|min)\s*(by\s*\([^)]*\)\s*)?\(", expr), (
            f"{where}: `{expr}` adds up the copies of {sorted(shared)} that each api replica exports"
        )


def test_metric_names_are_found_in_expressions() -> None:
    assert metric_names('sum by (le) (rate(a_bucket{x="y"}[5m])) / b_total and on (k) c{q=~"sum(d)"} > 2') == {
        "a_bucket",
        "b_total",
        "c",
    }


class Prometheus:
    def __init__(self, folder: Path, api_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
        api_job = next(job for job in config["scrape_configs"] if job["job_name"] == "graycat-api")
        del api_job["dns_sd_configs"]  # the shipped job with its authorization, pointed at the test's api
        api_job["static_configs"] = [{"targets": [f"127.0.0.1:{api_port}"]}]
        config["scrape_configs"] = [api_job]
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        shutil.copy(MONITORING / "prometheus" / "alerts.yml", folder / "alerts.yml")
        (folder / "metrics_token").write_text(METRICS_TOKEN)
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        binary = shutil.which("prometheus")
        assert binary, "prometheus is not on PATH (apt-get install prometheus; .ci/run does)"
        self.log = (folder / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **params: str) -> Any:
        resp = httpx.get(self.url + path, params=params, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        resp = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def ready(self) -> bool:
        assert self.proc.poll() is None, "prometheus exited"
        try:
            return httpx.get(self.url + "/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster, gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus scraping an api (behind METRICS_TOKEN) while requests of every kind, text and images, flow
    through it."""
    models = tmp_path_factory.mktemp("sd-models")
    build_models_folder(models)
    _, base = cluster.api(METRICS_TOKEN=METRICS_TOKEN)
    painter = cluster.sd_worker(models)
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), int(base.rsplit(":", 1)[1]))
    try:
        wait_until(prom.ready, 30, "prometheus")
        stop = threading.Event()
        traffic = [threading.Thread(target=work, args=(base, stop)) for work in (_traffic, _image_traffic)]
        for thread in traffic:
            thread.start()
        try:
            time.sleep(12)
        finally:
            stop.set()
            for thread in traffic:
                thread.join(60)
        time.sleep(3)  # scrapes after the last request
        yield prom
    finally:
        prom.stop()
        painter.stop()


def _traffic(base: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        for i in range(200):
            if stop.is_set():
                return
            client.post("/completion", json={"prompt": f"Count {i}", "n_predict": 4, "stream": i % 2 == 0})
            client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3})
            client.post("/v1/completions", json={"prompt": 1})  # 400
            client.get("/queue/status")


def _image_traffic(base: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        while not stop.is_set():
            client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "steps": 3, "width": 64, "height": 64})
            client.post(
                "/v1/images/generations", json={"prompt": "a dog", "size": "64x64", "steps": 2, "model": "tiny"}
            )


def test_scrapes_succeed_and_alert_rules_evaluate(prometheus: Prometheus) -> None:
    targets = prometheus.get("/api/v1/targets")["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets  # with the shipped bearer-token settings
    rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
    assert {r["name"] for r in rules} == {name.removeprefix("alert ") for name, _ in alert_queries()}
    for rule in rules:
        assert rule["health"] == "ok", rule


@pytest.mark.parametrize(("where", "expr"), dashboard_queries() + alert_queries(), ids=lambda v: str(v)[:60])
def test_every_query_reads_metrics_that_exist(prometheus: Prometheus, where: str, expr: str) -> None:
    for name in metric_names(expr) - GPU_SERIES:
        assert prometheus.query(f'count({{__name__="{name}"}})'), f"{where}: no series named {name} in `{expr}`"
    result = prometheus.query(expr)
    if where.startswith("alert ") or metric_names(expr) & GPU_SERIES:
        return  # a healthy system raises no alert, and a machine without a GPU has no GPU series
    assert result, f"{where}: `{expr}` returned no data"
