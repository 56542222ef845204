"""Ollama's model management on the gateway with the official `ollama` client: `pull` (admin tokens only) is done
by a worker onto its own disk, through the queue, with its progress streamed as Ollama does; the worker then
serves the model without a restart, and `list` and `show` report it from what the worker announced (the api's
models folder stays empty, as on another machine). A named worker, a worker that is not live, no worker at all,
an image model and bad references each get a clear answer. Under `graycat up` (one folder for both), `copy` and
`delete` act on the pulled file (tests/test_model_ops_e2e.py: on workers' own disks). Each test runs on a Redis of
its module: a pull goes to any live worker."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest

from graycat.workers.engines.llama_server import DEFAULT_MODEL_FILE, default_model_path
from tests.conftest import ADMIN, TOKEN, Cluster, own_cluster, wait_until
from tests.fake_hub import SMOLLM_REPO, FakeHub, default_model_hub
from tests.test_standalone_e2e import _up

pytestmark = pytest.mark.e2e
NAME = Path(DEFAULT_MODEL_FILE).stem
REF = f"hf.co/{SMOLLM_REPO}:Q4_1"  # as Ollama names Hub models


hub = pytest.fixture(scope="module")(default_model_hub)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster on a Redis of its own: no worker of another module takes these pulls."""
    with own_cluster(tmp_path_factory, "pull") as cluster:
        yield cluster


def test_a_worker_pulls_and_serves_a_model_for_the_ollama_client(own: Cluster, hub: FakeHub, tmp_path: Path) -> None:
    api_models, worker_models = tmp_path / "api-models", tmp_path / "worker-models"
    _, base = own.api(GRAYCAT_MODELS_DIR=str(api_models))
    admin = ollama.Client(host=base, headers={"Authorization": f"Bearer {ADMIN}"})
    user = ollama.Client(host=base, headers={"Authorization": f"Bearer {TOKEN}"})

    with pytest.raises(ollama.ResponseError) as refused:
        user.pull(REF)
    assert refused.value.status_code == 403
    with pytest.raises(ollama.ResponseError) as nobody:
        admin.pull(REF)
    assert nobody.value.status_code == 503 and "no live worker takes pulls" in str(nobody.value), nobody.value

    worker = own.worker("--slots", "1", GRAYCAT_MODELS_DIR=str(worker_models), HF_ENDPOINT=hub.url)
    worker_id = _worker_id(base)
    for bad, status, message in (
        ("llama3.2", 400, "pulls from the Hugging Face Hub or a URL"),
        ("hf:graycat-test", 400, "expected hf:OWNER/REPO"),
        (f"hf:{SMOLLM_REPO}/model.safetensors", 400, "is an image model"),
        (f"hf.co/{SMOLLM_REPO}:Q4_K", 400, "Q4_K matches 2 files"),  # answered by the worker, from the Hub
        ("hf.co/graycat-test/none", 404, "no repository graycat-test/none"),
        ("hf.co/graycat-test/no-gguf", 404, "holds no GGUF file"),
        ("hf.co/graycat-test/image-model", 404, "`graycat pull --sd hf:graycat-test/image-model`"),
        (f"hf.co/{SMOLLM_REPO}:F32", 507, "not enough disk space"),
        (f"hf.co/{SMOLLM_REPO}:Q4_K_M", 422, "was pulled, but llama.cpp cannot serve it"),  # no model inside
    ):
        with pytest.raises(ollama.ResponseError) as failed:
            admin.pull(bad)
        assert (failed.value.status_code, message in str(failed.value)) == (status, True), (bad, failed.value)

    hub.faults.__init__()  # type: ignore[misc]
    hub.faults.corrupt_at = 1_234_567
    with pytest.raises(ollama.ResponseError) as corrupted:
        admin.pull(REF)
    assert corrupted.value.status_code == 502 and "checksum mismatch" in str(corrupted.value)
    hub.faults.corrupt_at = None
    partial = (
        worker_models
        / ".partial"
        / f"{DEFAULT_MODEL_FILE}.{hub.repos[SMOLLM_REPO][DEFAULT_MODEL_FILE].sha256[:16]}.part"
    )
    partial.symlink_to("/dev/full")  # every write fails with ENOSPC: the disk filled up during the download
    with pytest.raises(ollama.ResponseError) as full:
        admin.pull(REF)
    assert full.value.status_code == 507 and "is full" in str(full.value) and "run the pull again" in str(full.value)
    partial.unlink()
    assert not (worker_models / DEFAULT_MODEL_FILE).exists()

    hub.faults.__init__()  # type: ignore[misc]
    hub.faults.seconds_per_mb, hub.faults.drop_after = 0.01, 30_000_000  # the connection drops once, midway
    steps = list(admin.pull(REF, stream=True))
    assert [r is not None for r in hub.faults.ranges] == [False, True]  # resumed where it stopped
    assert steps[0].status == "pulling manifest" and steps[-1].status == "success"
    downloading = [s for s in steps if s.completed is not None]
    total = len(default_model_path().read_bytes())
    assert downloading and {s.total for s in downloading} == {total} and downloading[-1].completed == total
    assert downloading[0].digest is not None and downloading[0].digest.startswith("sha256:")
    assert f"loading {NAME}" in [s.status for s in steps]
    assert (worker_models / DEFAULT_MODEL_FILE).is_file() and not api_models.exists()  # on the worker's disk only

    # served at once by the worker that pulled it, beside its first model: no restart
    answer = user.chat(model=NAME, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 4})
    assert answer.message.content and worker.alive()
    assert admin.pull(REF).status == "success"  # already there and served: at once

    digest = hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    listed = next(m for m in user.list().models if m.model == f"{NAME}:latest")  # from the worker's announcement
    assert (listed.size, listed.digest) == (total, digest) and listed.details is not None
    assert (listed.details.family, listed.details.quantization_level, listed.details.parameter_size) == (
        "llama",
        "Q4_1",
        "135M",
    )
    shown = user.show(NAME)
    assert shown.details is not None and shown.details.family == "llama" and shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama" and shown.modelinfo["context_length"] > 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as http:
        [row] = [m for m in http.get("/models").json()["text"] if m["name"] == NAME]
        assert (row["workers"], row["loading"]) == (1, False)
        # a named worker: unknown, or one that takes no pulls
        unknown = http.post("/api/pull", json={"model": REF, "worker": "llm-nowhere-1"})
        assert unknown.status_code == 404 and "no live worker llm-nowhere-1" in unknown.text
        again = http.post("/api/pull", json={"model": REF, "worker": worker_id, "stream": False})
        assert again.status_code == 200 and again.json() == {"status": "success", "model": NAME, "worker": worker_id}
    assert _cli_row(own, worker_models)[5] == worker_id  # `graycat models` on the worker's machine: SERVED BY
    worker.stop()


def test_a_worker_that_takes_no_pulls_is_named(own: Cluster, tmp_path: Path) -> None:
    """An LLM worker without an embedded llama.cpp (here the null engine; also one in front of an external
    server) takes no pulls, and the answers say so."""
    _, base = own.api()
    worker = own.spawn("null-worker", ["worker", "null", "--model-name", "nothing"])
    wait_until(lambda: own.ready(worker), 60, "the null worker")
    worker_id = _worker_id(base, "nothing")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as http:
        named = http.post("/api/pull", json={"model": REF, "worker": worker_id})
        assert named.status_code == 409 and "takes no pulls" in named.text, named.text
        anyone = http.post("/api/pull", json={"model": REF})
        assert anyone.status_code == 503 and f"{worker_id}: it serves an external" in anyone.text, anyone.text
    worker.stop()


def test_a_named_worker_pulls_and_a_worker_lost_midway_is_said(own: Cluster, hub: FakeHub, tmp_path: Path) -> None:
    _, base = own.api()
    first = own.worker("--slots", "1", GRAYCAT_MODELS_DIR=str(tmp_path / "a"), HF_ENDPOINT=hub.url)
    first_id = _worker_id(base)
    second = own.worker("--slots", "1", GRAYCAT_MODELS_DIR=str(tmp_path / "b"), HF_ENDPOINT=hub.url)
    second_id = next(w for w in _worker_ids(base) if w != first_id)
    hub.faults.__init__()  # type: ignore[misc]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as http:
        named = http.post("/api/pull", json={"model": REF, "worker": second_id, "stream": False})
        assert named.status_code == 200 and named.json()["worker"] == second_id, named.text
        assert (tmp_path / "b" / DEFAULT_MODEL_FILE).is_file() and not (tmp_path / "a" / DEFAULT_MODEL_FILE).exists()
        [row] = [m for m in http.get("/models").json()["text"] if m["name"] == NAME]
        assert row["workers"] == 1

        hub.faults.seconds_per_mb = 0.2  # about 20 s: the worker is killed midway
        body = {"model": f"{hub.url}/files/{DEFAULT_MODEL_FILE}", "worker": first_id}
        with http.stream("POST", "/api/pull", json=body) as pulling:
            assert pulling.status_code == 200
            lines = []
            for line in pulling.iter_lines():
                lines.append(json.loads(line))
                if lines[-1].get("completed") and len(lines) == 3:
                    first.stop(signal.SIGKILL)
    assert "stopped during the pull" in lines[-1]["error"] and first_id in lines[-1]["error"], lines[-1]
    assert next((tmp_path / "a" / ".partial").glob("*.part")).stat().st_size > 0  # kept for the next pull there

    # about 50 s (its progress comes every 10 MB, huggingface_hub's chunk): a worker asked to stop does not wait
    hub.faults.seconds_per_mb = 0.5
    body["worker"] = second_id
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.stream("POST", f"{base}/api/pull", json=body, headers=admin, timeout=60) as pulling:
        for line in pulling.iter_lines():
            if json.loads(line).get("completed"):
                break
        began = time.monotonic()
        assert second.stop(timeout=60) == 0 and time.monotonic() - began < 20


def test_under_graycat_up_a_pulled_model_is_served_copied_and_deleted(hub: FakeHub, tmp_path: Path) -> None:
    """Standalone: the worker serving the pulled model copies and deletes it in the data folder's models."""
    hub.faults.seconds_per_mb = 0
    proc, base, _ = _up(tmp_path, HF_ENDPOINT=hub.url, ADMIN_TOKENS=ADMIN)
    models = tmp_path / "data" / "models"
    try:
        admin = ollama.Client(host=base, headers={"Authorization": f"Bearer {ADMIN}"})
        assert admin.pull(REF).status == "success"
        answer = admin.generate(model=NAME, prompt="Once", options={"num_predict": 4})
        assert answer.response
        assert admin.copy(NAME, "smol").status == "success"
        assert (models / "smol.gguf").read_bytes() == (models / DEFAULT_MODEL_FILE).read_bytes()
        for source, destination, status in ((NAME, "smol", 409), (NAME, "../out", 400), ("nothing", "x", 404)):
            with pytest.raises(ollama.ResponseError) as refused_copy:
                admin.copy(source, destination)
            assert refused_copy.value.status_code == status, (source, destination)
        assert admin.delete("smol:latest").status == "success" and admin.delete(NAME).status == "success"
        assert not (models / DEFAULT_MODEL_FILE).exists() and not (models / "smol.gguf").exists()
        with pytest.raises(ollama.ResponseError) as gone:
            admin.delete("smol")
        assert gone.value.status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def _worker_id(base: str, model: str | None = None) -> str:
    """The id of the live LLM worker (serving `model` when given), from /queue/status."""
    status = httpx.get(f"{base}/queue/status", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()
    return next(w["id"] for w in status["workers"] if w["kind"] == "llm" and (model is None or model in w["models"]))


def _worker_ids(base: str) -> list[str]:
    status = httpx.get(f"{base}/queue/status", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()
    return [w["id"] for w in status["workers"]]


def _cli_row(cluster: Cluster, models: Path) -> list[str]:
    """`graycat models`'s row of the pulled model: NAME FAMILY QUANT SIZE (2 words) SERVED-BY FROM."""
    done = subprocess.run(
        [sys.executable, "-m", "graycat", "models"],
        env=cluster.env(GRAYCAT_MODELS_DIR=str(models)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    row = next(line for line in done.stdout.splitlines() if line.startswith(NAME + " "))
    return row.split()
