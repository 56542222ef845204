"""`graycat worker llm --model hf:...`: the worker pulls its model from a (local) Hub at start, is announced as
loading meanwhile (its download's progress in /health, /models, /queue/status and the metrics; requests wait
for it), then serves it through the gateway."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from graycat.workers.engines.llama_server import DEFAULT_MODEL_FILE, default_model_path
from tests.conftest import TOKEN, Cluster, wait_until
from tests.fake_hub import SMOLLM_REPO, FakeHub, default_model_hub
from tests.test_standalone_e2e import _up

pytestmark = pytest.mark.e2e
NAME = Path(DEFAULT_MODEL_FILE).stem


hub = pytest.fixture(scope="module")(default_model_hub)


def test_a_worker_pulls_its_model_then_serves_it(cluster: Cluster, hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.seconds_per_mb = 0.05  # a slow link: the download takes about 5 s
    _, base = cluster.api()
    models = tmp_path / "models"
    worker = cluster.spawn(
        "pull-worker",
        [
            "worker",
            "llm",
            "--slots",
            "1",
            "--ctx-size",
            "512",
            "--model",
            f"hf:{SMOLLM_REPO}:Q4_1",
            "--also-model",
            f"twin=hf:{SMOLLM_REPO}/{DEFAULT_MODEL_FILE}",
        ],
        HF_ENDPOINT=hub.url,
        GRAYCAT_MODELS_DIR=str(models),
    )
    seen: dict[str, dict[str, int]] = {}

    def pulling() -> bool:
        assert worker.alive(), worker.output()
        seen.update(httpx.get(f"{base}/health", timeout=5).json().get("pulling", {}))
        return NAME in seen

    wait_until(pulling, 60, "the download's progress in /health")
    total = len(default_model_path().read_bytes())
    assert 0 < seen[NAME]["completed"] < seen[NAME]["total"] == total
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        [listed] = [m for m in http.get("/models").json()["text"] if m["name"] == NAME]
        [status] = [w for w in http.get("/queue/status").json()["workers"] if NAME in w["models"]]
    assert listed["loading"] is True and 0 < listed["pulling"]["completed"] <= listed["pulling"]["total"] == total
    assert status["loading"] is True and status["pulling"][NAME]["total"] == total
    metrics = httpx.get(f"{base}/metrics", timeout=5).text  # from a loopback address: no token needed
    figures = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("graycat_worker_pull_") and f'model="{NAME}"' in line
    }
    assert figures["graycat_worker_pull_total_bytes"] == total
    assert 0 < figures["graycat_worker_pull_completed_bytes"] <= total
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        # sent while the worker downloads: it waits in the queue, then the pulled model answers
        answer = client.post(
            "/v1/chat/completions",
            json={"model": NAME, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == NAME and answer.json()["choices"][0]["message"]["content"]
        twin = client.post("/v1/completions", json={"model": "twin", "prompt": "Once", "max_tokens": 4})
        assert twin.status_code == 200, twin.text
    assert (models / DEFAULT_MODEL_FILE).is_file()
    assert len(hub.faults.ranges) == 1  # the second reference to the same file did not download it again
    assert "pulling " + NAME in worker.output()
    worker.stop()


def test_a_worker_given_an_unknown_repository_says_so(cluster: Cluster, hub: FakeHub, tmp_path: Path) -> None:
    worker = cluster.spawn(
        "bad-ref-worker",
        ["worker", "llm", "--model", "hf:graycat-test/missing:Q4_0"],
        HF_ENDPOINT=hub.url,
        GRAYCAT_MODELS_DIR=str(tmp_path),
    )
    assert worker.proc.wait(60) == 2
    assert "graycat worker: no repository graycat-test/missing" in worker.output()


def test_up_serves_a_model_given_by_reference(hub: FakeHub, tmp_path: Path) -> None:
    """`GRAYCAT_MODEL=hf:... graycat up`: the model is pulled into the data folder, then served as the default."""
    hub.faults.seconds_per_mb = 0
    proc, base, lines = _up(tmp_path, GRAYCAT_MODEL=f"hf:{SMOLLM_REPO}:Q4_1", HF_ENDPOINT=hub.url)
    try:
        assert f"text: {NAME}" in "".join(lines)
        token = (tmp_path / "data" / "api-token").read_text().strip()
        answer = httpx.post(
            f"{base}/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
            timeout=60,
        )
        assert answer.status_code == 200 and answer.json()["model"] == NAME
        assert (tmp_path / "data" / "models" / DEFAULT_MODEL_FILE).is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
