"""The shipped monitoring files, checked with Prometheus' own tool (promtool, from Debian's `prometheus`)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import yaml

from graycat.logs import JsonFormatter

MONITORING = Path(__file__).resolve().parent.parent / "deploy" / "monitoring"
PROMETHEUS = MONITORING / "prometheus"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not on PATH (apt-get install prometheus; .ci/run does)"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    (tmp_path / "metrics_token").write_text("")  # what compose mounts beside the config
    result = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {case["alertname"] for t in tests for case in t.get("alert_rule_test", []) if case["exp_alerts"]}
    assert alerts == fired, f"alerts without a firing test: {alerts - fired}"


def test_dashboards_use_provisioned_datasources_and_unique_ids() -> None:
    sources = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())[
        "datasources"
    ]
    uids = {s["uid"]: s["type"] for s in sources}
    dashboard_uids = set()
    for path in sorted((MONITORING / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        assert board["uid"] == path.stem and board["uid"] not in dashboard_uids
        dashboard_uids.add(board["uid"])
        panel_ids = [p["id"] for p in board["panels"]]
        assert len(panel_ids) == len(set(panel_ids)), path.name
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert uids.get(panel["datasource"]["uid"]) == panel["datasource"]["type"], (path.name, panel["title"])
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), (path.name, panel["title"])
    assert {
        "graycat-overview",
        "graycat-llm",
        "graycat-images",
        "graycat-queue-workers",
        "graycat-gpu",
    } <= dashboard_uids


def test_promtail_and_loki_queries_read_the_fields_graycat_logs() -> None:
    """Loki and promtail cannot run here: check that what they read matches what the JSON formatter writes."""
    rec = logging.getLogger("graycat.test").makeRecord("graycat.test", logging.ERROR, __file__, 1, "boom", (), None)
    entry = json.loads(JsonFormatter().format(rec))
    scrape = yaml.safe_load((MONITORING / "promtail" / "promtail.yml").read_text())["scrape_configs"][0]
    stages = scrape["pipeline_stages"][0]["match"]["stages"]
    fields = next(stage["json"]["expressions"] for stage in stages if "json" in stage)
    assert set(fields.values()) <= set(entry), "promtail reads a field the logs do not have"
    stamp = next(stage["timestamp"] for stage in stages if "timestamp" in stage)
    assert stamp["format"] == "RFC3339Nano"
    datetime.fromisoformat(entry[fields[stamp["source"]]])  # an RFC 3339 time
    for path in sorted((MONITORING / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                if (target.get("datasource") or panel["datasource"])["type"] != "loki":
                    continue
                wanted = re.search(r'level=~"([^"]+)"', target["expr"])
                assert wanted, target["expr"]
                matched = {lvl for lvl in ("ERROR", "WARNING", "INFO") if re.fullmatch(wanted.group(1), lvl)}
                assert matched == {"ERROR", "WARNING"}, (path.name, panel["title"], target["expr"])
