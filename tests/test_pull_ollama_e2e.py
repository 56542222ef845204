"""Ollama's model management on the gateway with the official `ollama` client: `pull` streams its progress as
Ollama does (admin tokens only), a worker then serves the pulled model by name, `copy` names it again and
`delete` removes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from graycat.workers.engines.llama import DEFAULT_MODEL_FILE, default_model_path
from tests.conftest import ADMIN, TOKEN, Cluster, wait_until
from tests.fake_hub import SMOLLM_REPO, FakeHub, HubFile, smollm_hub

pytestmark = pytest.mark.e2e
NAME = Path(DEFAULT_MODEL_FILE).stem


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    served = smollm_hub(HubFile(default_model_path().read_bytes()), DEFAULT_MODEL_FILE)
    yield served
    served.close()


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

    worker = cluster.spawn("pulled-worker", ["worker", "llm", "--slots", "1", "--ctx-size", "512", "--model", NAME],
                           GRAYCAT_MODELS_DIR=str(models))
    wait_until(lambda: cluster.ready(worker), 60, "the worker of the pulled model")
    answer = user.chat(model=NAME, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 4})
    assert answer.message.content
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
