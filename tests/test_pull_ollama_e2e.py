"""Ollama's model management on the gateway with the official `ollama` client: `pull` streams its progress as
Ollama does (admin tokens only), a worker then serves the pulled model by name, `copy` names it again and
`delete` removes it; `list` and `show` report the file (size, digest, family, quantisation) and whether a worker
serves it, as `graycat models` does."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import ollama
import pytest

from graycat.workers.engines.llama_server import DEFAULT_MODEL_FILE, default_model_path
from tests.conftest import ADMIN, TOKEN, Cluster, wait_until
from tests.fake_hub import SMOLLM_REPO, FakeHub, default_model_hub

pytestmark = pytest.mark.e2e
NAME = Path(DEFAULT_MODEL_FILE).stem


hub = pytest.fixture(scope="module")(default_model_hub)


def test_pull_serve_and_delete_with_the_ollama_client(cluster: Cluster, hub: FakeHub, tmp_path: Path) -> None:
    models = tmp_path / "models"
    _, base = cluster.api(HF_ENDPOINT=hub.url, GRAYCAT_MODELS_DIR=str(models))
    admin = ollama.Client(host=base, headers={"Authorization": f"Bearer {ADMIN}"})
    user = ollama.Client(host=base, headers={"Authorization": f"Bearer {TOKEN}"})
    ref = f"hf.co/{SMOLLM_REPO}:Q4_1"  # as Ollama names Hub models

    with pytest.raises(ollama.ResponseError) as refused:
        user.pull(ref)
    assert refused.value.status_code == 403
    for bad, status in (("llama3.2", 400), (f"hf.co/{SMOLLM_REPO}:Q4_K", 400), ("hf.co/graycat-test/none", 404)):
        with pytest.raises(ollama.ResponseError) as failed:
            admin.pull(bad)
        assert failed.value.status_code == status, bad

    hub.faults.seconds_per_mb = 0.01
    steps = list(admin.pull(ref, stream=True))
    assert steps[0].status == "pulling manifest" and steps[-1].status == "success"
    downloading = [s for s in steps if s.completed is not None]
    total = len(default_model_path().read_bytes())
    assert downloading and {s.total for s in downloading} == {total} and downloading[-1].completed == total
    assert downloading[0].digest is not None and downloading[0].digest.startswith("sha256:")
    assert (models / DEFAULT_MODEL_FILE).is_file()
    assert admin.pull(ref).status == "success"  # already there: at once

    digest = hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    listed = next(m for m in user.list().models if m.model == f"{NAME}:latest")  # on disk, served by no worker
    assert (listed.size, listed.digest) == (total, digest) and listed.details is not None
    assert (listed.details.family, listed.details.quantization_level, listed.details.parameter_size) == (
        "llama",
        "Q4_1",
        "135M",
    )
    assert _served(base)[NAME] is False
    shown = user.show(NAME)
    assert shown.details is not None and shown.details.family == "llama" and shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert _cli_row(cluster, models)[5] == "-"  # SERVED BY: nobody

    worker = cluster.spawn(
        "pulled-worker",
        ["worker", "llm", "--slots", "1", "--ctx-size", "512", "--model", NAME],
        GRAYCAT_MODELS_DIR=str(models),
    )
    wait_until(lambda: cluster.ready(worker), 60, "the worker of the pulled model")
    answer = user.chat(model=NAME, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 4})
    assert answer.message.content
    assert _served(base)[NAME] is True
    served = next(m for m in user.list().models if m.model == f"{NAME}:latest")
    assert served.digest == digest and served.details is not None and served.details.quantization_level == "Q4_1"
    assert user.show(NAME).modelinfo["context_length"] > 0  # type: ignore[index]
    assert _cli_row(cluster, models)[5] not in ("-", "?")  # the live worker's id
    worker.stop()

    assert admin.copy(NAME, "smol").status == "success"
    assert (models / "smol.gguf").read_bytes() == (models / DEFAULT_MODEL_FILE).read_bytes()
    for source, destination, status in ((NAME, "smol", 409), (NAME, "../out", 400), ("nothing", "x", 404)):
        with pytest.raises(ollama.ResponseError) as refused_copy:
            admin.copy(source, destination)
        assert refused_copy.value.status_code == status, (source, destination)

    assert admin.delete(NAME).status == "success" and admin.delete("smol:latest").status == "success"
    assert not (models / DEFAULT_MODEL_FILE).exists() and not (models / "smol.gguf").exists()
    with pytest.raises(ollama.ResponseError) as gone:
        admin.delete(NAME)
    assert gone.value.status_code == 404


def _served(base: str) -> dict[str, bool]:
    tags = httpx.get(f"{base}/api/tags", headers={"Authorization": f"Bearer {TOKEN}"}).json()["models"]
    return {m["name"].removesuffix(":latest"): m["served"] for m in tags}


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
