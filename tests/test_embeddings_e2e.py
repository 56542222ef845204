"""Embeddings from a worker started with --embeddings: both LLM for Unity shapes and OpenAI's."""

from __future__ import annotations

import math

import openai
import pytest

from tests.conftest import EMBED_MODEL as NAME
from tests.conftest import MODEL, TOKEN, Gateway

pytestmark = pytest.mark.e2e


def test_llm_for_unity_v2_and_v3_shapes(embedder: Gateway) -> None:
    with embedder.client() as http:
        v2 = http.post("/embeddings", json={"content": "a red apple", "model": NAME}).json()
        v3 = http.post(
            "/embedding",
            json={"content": "a red apple", "model": NAME, "stream": False},
            headers={"Accept": "application/json"},
        ).json()
    assert isinstance(v2, dict) and len(v2["embedding"]) > 100 and isinstance(v2["embedding"][0], float)
    assert isinstance(v3, list) and v3[0]["index"] == 0
    flat = v3[0]["embedding"][0] if isinstance(v3[0]["embedding"][0], list) else v3[0]["embedding"]
    assert flat == pytest.approx(v2["embedding"])


def test_openai_embeddings_and_completions_on_the_same_worker(embedder: Gateway) -> None:
    sdk = openai.OpenAI(base_url=embedder.base + "/v1", api_key=TOKEN, max_retries=0)
    out = sdk.embeddings.create(model=NAME, input=["cat", "dog", "cat"])
    vectors = [d.embedding for d in out.data]
    assert len(vectors) == 3 and vectors[0] == pytest.approx(vectors[2])

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    assert cosine(vectors[0], vectors[1]) < 0.9999
    text = sdk.completions.create(model=NAME, prompt="Hello", max_tokens=3).choices[0].text
    assert text


def test_embeddings_of_a_model_served_without_them_are_refused(embedder: Gateway) -> None:
    with embedder.client() as http:
        resp = http.post("/embeddings", json={"content": "x", "model": MODEL})
        empty = http.post("/v1/embeddings", json={"input": "", "model": NAME})
    assert resp.status_code == 400 and "--embeddings" in resp.json()["error"]["message"]
    assert empty.status_code == 400
