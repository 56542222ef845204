"""One worker serving two models under their names, each chosen by name in every dialect; a chat template
override per model."""

from __future__ import annotations

import ollama
import openai
import pytest

from graycat.workers.engines.llama_server import default_model_path
from tests.conftest import TOKEN, Cluster, Gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_models(cluster: Cluster, gateway: Gateway) -> Gateway:
    cluster.worker(
        "--model-name",
        "alpha",
        "--also-model",
        f"beta={default_model_path()}",
        "--chat-template",
        "beta=llama3",
        "--slots",
        "1",
    )
    return gateway


def test_each_model_is_chosen_by_name_in_every_dialect(two_models: Gateway) -> None:
    sdk = openai.OpenAI(base_url=two_models.base + "/v1", api_key=TOKEN, max_retries=0)
    assert {"alpha", "beta"} <= {m.id for m in sdk.models.list()}
    workers = set()
    with two_models.client() as http:
        for name in ("alpha", "beta"):
            native = http.post("/completion", json={"prompt": "Hi", "n_predict": 2, "model": name})
            chat = http.post(
                "/v1/chat/completions",
                json={"model": name, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]},
            )
            assert native.status_code == chat.status_code == 200
            assert chat.json()["model"] == name
            workers |= {native.headers["x-worker-id"], chat.headers["x-worker-id"]}
    assert len(workers) == 1  # both models on the one worker
    client = ollama.Client(host=two_models.base, headers={"Authorization": f"Bearer {TOKEN}"})
    out = client.chat(model="beta:latest", messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 2})
    assert out.model == "beta:latest" and out.message.content


def test_chat_template_override_per_model(two_models: Gateway) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    with two_models.client() as http:
        alpha = http.post("/apply-template", json={"model": "alpha", "messages": messages}).json()["prompt"]
        beta = http.post("/apply-template", json={"model": "beta", "messages": messages}).json()["prompt"]
        names = [http.post("/template", json={"model": m}).json()["template"] for m in ("alpha", "beta")]
    assert "<|im_start|>user" in alpha  # the model's own (ChatML) template
    assert "<|start_header_id|>user<|end_header_id|>" in beta  # the override
    assert names == ["chatml", "llama3 chat"]
