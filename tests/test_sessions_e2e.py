"""Sessions: the conversation is kept in Redis, so a client sends only its new message."""

from __future__ import annotations

import signal
import time

import httpx
import ollama
import openai
import pytest

from tests.conftest import MODEL, TOKEN, Cluster, Gateway, Proc

pytestmark = pytest.mark.e2e
FIRST = "My name is Ada and my favourite colour is green. Remember it."


def _chat(http, session: str, content: str, **extra: object) -> dict:  # type: ignore[no-untyped-def,type-arg]
    resp = http.post(
        "/v1/chat/completions",
        headers={"X-Session-ID": session},
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 24,
            "temperature": 0,
            **extra,
        },
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_second_turn_uses_the_history_and_reuses_the_processed_prompt(gateway: Gateway) -> None:
    with gateway.client() as http:
        first = _chat(http, "ada-1", FIRST)
        second = _chat(http, "ada-1", "What is my name?")
        history = http.get("/sessions/ada-1").json()["messages"]
        whole = http.post(
            "/v1/chat/completions",
            json={"model": MODEL, "max_tokens": 24, "temperature": 0, "messages": [*history[:3]]},
        ).json()
    # the history was in the prompt: the answer is the one the whole conversation sent at once gets
    assert second["usage"]["prompt_tokens"] == whole["usage"]["prompt_tokens"]
    assert second["choices"][0]["message"]["content"] == whole["choices"][0]["message"]["content"]
    # ... but only the new part was processed: the engine reused the conversation cached in its slot
    assert second["timings"]["prompt_n"] < second["usage"]["prompt_tokens"] / 3
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[0]["content"] == FIRST and history[1]["content"] == first["choices"][0]["message"]["content"]


def test_streamed_turns_and_the_body_field_keep_the_session(gateway: Gateway) -> None:
    sdk = openai.OpenAI(base_url=gateway.base + "/v1", api_key=TOKEN, max_retries=0)
    for question in (FIRST, "What is my favourite colour?"):
        text = "".join(
            c.choices[0].delta.content or ""
            for c in sdk.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": question}],
                max_tokens=16,
                temperature=0,
                stream=True,
                extra_body={"session_id": "ada-stream"},
            )
            if c.choices
        )
        assert text
    with gateway.client() as http:
        history = http.get("/sessions/ada-stream").json()["messages"]
    assert len(history) == 4 and history[3]["content"] == text


def test_ollama_chat_keeps_a_session(gateway: Gateway) -> None:
    client = ollama.Client(
        host=gateway.base, headers={"Authorization": f"Bearer {TOKEN}", "X-Session-ID": "ollama-ada"}
    )
    client.chat(model=MODEL, messages=[{"role": "user", "content": FIRST}], options={"num_predict": 8})
    second = client.chat(
        model=MODEL, messages=[{"role": "user", "content": "What is my name?"}], options={"num_predict": 8}
    )
    with gateway.client() as http:
        history = http.get("/sessions/ollama-ada").json()["messages"]
        prompt = http.post("/apply-template", json={"messages": history[:3]}).json()["prompt"]
        whole = len(http.post("/tokenize", json={"content": prompt}).json()["tokens"])
    assert len(history) == 4
    assert second.prompt_eval_count < whole / 2, (second.prompt_eval_count, whole)  # mostly reused from the cache


def test_sessions_belong_to_their_token_and_can_be_forgotten(gateway: Gateway) -> None:
    with gateway.client() as http:
        _chat(http, "private", "hello")
        assert http.get("/sessions/private").status_code == 200
        assert http.delete("/sessions/private").status_code == 204
        gone = http.get("/sessions/private")
        bad = http.post(
            "/v1/chat/completions",
            headers={"X-Session-ID": "a b"},
            json={"messages": [{"role": "user", "content": "x"}]},
        )
    assert gone.status_code == 404
    assert bad.status_code == 400 and "session_id" in bad.json()["error"]["message"]


@pytest.fixture(scope="module")
def two_workers(cluster: Cluster, gateway: Gateway) -> list[Proc]:
    return [cluster.worker("--model-name", "sess-model", "--slots", "1") for _ in range(2)]


def test_turns_stay_on_the_worker_holding_the_conversation_until_it_is_gone(
    gateway: Gateway, two_workers: list[Proc]
) -> None:
    def turn(http: httpx.Client, content: str) -> httpx.Response:
        resp = http.post(
            "/v1/chat/completions",
            headers={"X-Session-ID": "sticky"},
            json={"model": "sess-model", "messages": [{"role": "user", "content": content}], "max_tokens": 4},
        )
        assert resp.status_code == 200, resp.text
        return resp

    with gateway.client() as http:
        runners = {turn(http, f"Turn {i}: tell me more.").headers["x-worker-id"] for i in range(4)}
        assert len(runners) == 1  # every turn on the worker that holds the conversation
        runner = runners.pop()
        holder = next(w for w in two_workers if runner in w.output())
        holder.stop(signal.SIGKILL)
        started = time.monotonic()
        after = turn(http, "And now?")  # meant for the dead worker: moved to the pool once it is seen gone
        assert after.headers["x-worker-id"] not in holder.output()
        assert time.monotonic() - started < 30
        history = http.get("/sessions/sticky").json()["messages"]
    assert len(history) == 10
