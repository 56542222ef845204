"""JSON bodies without `Content-Type: application/json` are read as JSON on the routes whose peers accept them
(llama.cpp, Ollama, OpenAI): the docs' own copy-pasted curls work; a body that is not JSON is still a 4xx."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.conftest import MODEL, TOKEN, Gateway

pytestmark = pytest.mark.e2e


def curl(*args: str) -> tuple[int, str]:
    """`curl -d ...` as pasted from a doc: it sends application/x-www-form-urlencoded."""
    out = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {TOKEN}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status), body


def test_the_unity_docs_check_from_a_shell(gateway: Gateway) -> None:
    # docs/clients/unity.md, "Check from a shell"
    status, body = curl(gateway.base + "/completion", "-d", '{"prompt": "Hello", "n_predict": 16, "stream": true}')
    assert status == 200, body
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert events and events[-1]["stop"] is True and "".join(e["content"] for e in events)


def test_an_ollama_doc_example(gateway: Gateway) -> None:
    # Ollama's README: curl http://localhost:11434/api/generate -d '{"model": "llama3.2", "prompt": "..."}'
    status, body = curl(
        gateway.base + "/api/generate",
        "-d",
        json.dumps({"model": MODEL, "prompt": "Why is the sky blue?", "options": {"num_predict": 4}}),
    )
    assert status == 200, body
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines[-1]["done"] is True and "".join(line["response"] for line in lines)


@pytest.mark.parametrize("content_type", [None, "text/plain"])
def test_openai_chat_without_a_json_content_type(gateway: Gateway, content_type: str | None) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", **({"Content-Type": content_type} if content_type else {})}
    resp = httpx.post(gateway.base + "/v1/chat/completions", content=body, headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("path", ["/completion", "/api/generate", "/v1/completions"])
def test_a_body_that_is_not_json_is_still_refused(gateway: Gateway, path: str) -> None:
    status, body = curl(gateway.base + path, "-d", "prompt=Hello&n_predict=4")
    assert status == 400 and "not valid JSON" in body, body  # as llama.cpp, Ollama and OpenAI answer
    assert "JSON" in body
