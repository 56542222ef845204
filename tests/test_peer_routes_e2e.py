"""The routes and answers llama-server gives besides the `/v1` ones: OpenAI routes without `/v1`, 400 for
invalid bodies, the token as `X-Api-Key`."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import MODEL, TOKEN, Gateway

pytestmark = pytest.mark.e2e


def test_openai_sdk_with_a_base_url_without_v1(gateway: Gateway) -> None:
    sdk = openai.OpenAI(base_url=gateway.base, api_key=TOKEN, max_retries=0, timeout=60)
    out = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=4)
    assert out.object == "chat.completion" and out.choices[0].message.content
    assert MODEL in [m.id for m in sdk.models.list()]


def test_models_without_v1_keeps_the_gateway_listing(gateway: Gateway) -> None:
    with gateway.client() as http:
        listing = http.get("/models").json()
    assert listing["object"] == "list" and MODEL in [m["id"] for m in listing["data"]]
    assert MODEL in [m["name"] for m in listing["text"]]


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": "hello"}),
    ("/chat/completions", {"messages": [{"content": "no role"}]}),
    ("/v1/chat/completions", {"messages": []}),
    ("/v1/completions", {"prompt": 5}),
    ("/completion", {"n_predict": 3}),
])
def test_invalid_bodies_are_400_invalid_request_error(gateway: Gateway, path: str, body: dict) -> None:  # type: ignore[type-arg]
    with gateway.client() as http:
        resp = http.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_llamacpp_multimodal_prompt_object_is_accepted(gateway: Gateway) -> None:
    with gateway.client() as http:
        resp = http.post("/completion", json={"prompt": {"prompt_string": "The sky is"}, "n_predict": 3})
    assert resp.status_code == 200, resp.text
    assert "content" in resp.json()


def test_token_as_x_api_key(gateway: Gateway) -> None:
    with gateway.client(token=None) as http:
        good = http.post("/completion", json={"prompt": "Hi", "n_predict": 2}, headers={"X-Api-Key": TOKEN})
        wrong = http.post("/completion", json={"prompt": "Hi", "n_predict": 2}, headers={"X-Api-Key": "nope"})
        models = http.get("/v1/models", headers={"x-api-key": TOKEN})
    assert good.status_code == 200 and models.status_code == 200
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
