"""The null engine (for measuring the gateway) speaks each dialect well enough for real clients."""

from __future__ import annotations

import openai
import orjson
import pytest

from tests.conftest import TOKEN, Cluster, Gateway, wait_until

pytestmark = pytest.mark.e2e


def test_null_worker_serves_every_text_route(cluster: Cluster, gateway: Gateway) -> None:
    worker = cluster.spawn("null", ["worker", "null", "--model-name", "null-test", "--tokens", "5"])
    wait_until(lambda: " ready: " in worker.output(), 30, "the null worker")
    with gateway.client() as http:
        whole = http.post("/completion", json={"prompt": "x", "model": "null-test"}).json()
        assert whole["content"] == "xxxxx" and whole["tokens_predicted"] == 5
        with http.stream("POST", "/completion", json={"prompt": "x", "model": "null-test", "stream": True}) as s:
            events = [orjson.loads(line[6:]) for line in s.iter_lines() if line]
        assert "".join(e["content"] for e in events) == "xxxxx" and events[-1]["stop"] is True
    sdk = openai.OpenAI(base_url=gateway.base + "/v1", api_key=TOKEN, max_retries=0)
    chunks = list(
        sdk.chat.completions.create(model="null-test", messages=[{"role": "user", "content": "x"}], stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "xxxxx"
    assert sdk.completions.create(model="null-test", prompt="x").choices[0].text == "xxxxx"
    assert worker.stop() == 0
