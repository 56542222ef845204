"""Ollama routes through real processes, driven by the official `ollama` Python client."""

from __future__ import annotations

import json

import ollama
import pytest

from tests.conftest import EMBED_MODEL, MODEL, TOKEN, Gateway
from tests.rawhttp import ChunkedResponse

pytestmark = pytest.mark.e2e
FEW = {"num_predict": 6, "temperature": 0}


@pytest.fixture
def client(gateway: Gateway) -> ollama.Client:
    return ollama.Client(host=gateway.base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def test_chat_not_streamed(client: ollama.Client) -> None:
    out = client.chat(model=MODEL, messages=[{"role": "user", "content": "Say hello"}], options=FEW)
    assert out.done and out.done_reason in {"stop", "length"}
    assert out.message.role == "assistant" and out.message.content
    assert out.model == f"{MODEL}:latest"
    assert 0 < out.eval_count <= 6 and out.prompt_eval_count > 0 and out.eval_duration > 0


def test_chat_streamed_line_by_line(client: ollama.Client) -> None:
    parts = list(
        client.chat(
            model=f"{MODEL}:latest",
            messages=[{"role": "user", "content": "Count: 1, 2,"}],
            options={"num_predict": 8},
            stream=True,
        )
    )
    assert all(not p.done for p in parts[:-1]) and parts[-1].done
    assert "".join(p.message.content for p in parts)
    assert parts[-1].done_reason == "length" and parts[-1].eval_count == 8


def test_generate_streamed_and_not(client: ollama.Client) -> None:
    whole = client.generate(model=MODEL, prompt="The capital of France is", options=FEW)
    assert whole.response and whole.done
    parts = list(client.generate(model=MODEL, prompt="The capital of France is", options=FEW, stream=True))
    assert "".join(p.response for p in parts) == whole.response  # temperature 0: the same answer


def test_raw_generate_uses_the_prompt_as_is(client: ollama.Client, gateway: Gateway) -> None:
    with gateway.client() as http:
        templated = http.post("/tokenize", json={"content": "hi"}).json()["tokens"]
    out = client.generate(model=MODEL, prompt="hi", raw=True, options={"num_predict": 1})
    assert out.prompt_eval_count <= len(templated) + 1  # no chat template wrapped around it


def test_json_schema_format_gives_json_that_parses(client: ollama.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    out = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        format=schema,
        options={"num_predict": 60, "temperature": 0},
    )
    person = json.loads(out.message.content)
    assert isinstance(person["name"], str) and isinstance(person["age"], int)
    raw = client.generate(
        model=MODEL, prompt="A JSON object:", raw=True, format="json", options={"num_predict": 40, "temperature": 0}
    )
    assert raw.done_reason == "length" or isinstance(json.loads(raw.response), dict)


def test_stop_words_and_seed(client: ollama.Client) -> None:
    prompt = [{"role": "user", "content": "Write the numbers from 1 to 20 separated by commas."}]
    out = client.chat(model=MODEL, messages=prompt, options={"num_predict": 40, "temperature": 0, "stop": [","]})
    assert "," not in out.message.content and out.done_reason == "stop"
    seeded = [
        client.chat(
            model=MODEL, messages=prompt, options={"num_predict": 12, "temperature": 1.0, "seed": 42}
        ).message.content
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


def test_models_listed_shown_and_running(client: ollama.Client) -> None:
    assert f"{MODEL}:latest" in [m.model for m in client.list().models]
    assert f"{MODEL}:latest" in [m.model for m in client.ps().models]
    shown = client.show(MODEL)
    assert "completion" in (shown.capabilities or [])


def test_embed_both_apis(client: ollama.Client, embedder: Gateway) -> None:
    out = client.embed(model=EMBED_MODEL, input=["cat", "dog"])
    assert len(out.embeddings) == 2 and len(out.embeddings[0]) > 100 and out.embeddings[0] != out.embeddings[1]
    legacy = client.embeddings(model=EMBED_MODEL, prompt="cat")
    assert legacy.embedding == pytest.approx(out.embeddings[0], rel=1e-4)


def test_load_request_answers_at_once(client: ollama.Client) -> None:
    out = client.generate(model=MODEL, prompt="", keep_alive="5m")
    assert out.done and out.done_reason == "load"


def test_errors_in_ollama_shape(client: ollama.Client, gateway: Gateway) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404 and "no-such-model" in missing.value.error
    with gateway.client() as http:
        bad_format = http.post("/api/generate", json={"model": MODEL, "prompt": "x", "format": "yaml"})
        no_token = http.post("/api/chat", json={"model": MODEL}, headers={"Authorization": "Bearer wrong"})
    assert bad_format.status_code == 400 and "format" in bad_format.json()["error"]
    assert no_token.status_code == 401 and no_token.json() == {"error": "invalid API token"}


def test_stream_is_ndjson_one_line_per_chunk(gateway: Gateway) -> None:
    resp = ChunkedResponse(gateway.base, "/api/generate", {"model": MODEL, "prompt": "hi", "options": FEW}, TOKEN)
    try:
        assert resp.headers.get("content-type") == "application/x-ndjson"
        chunks = list(resp.chunks())
    finally:
        resp.close()
    assert all(c.endswith(b"\n") and c.count(b"\n") == 1 for c in chunks)
    assert json.loads(chunks[-1])["done"] is True
