"""The routes and answers llama-server gives besides the `/v1` ones: OpenAI routes without `/v1`, 400 for
invalid bodies, the token as `X-Api-Key`."""

from __future__ import annotations

import httpx
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


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": "hello"}),
        ("/chat/completions", {"messages": [{"content": "no role"}]}),
        ("/v1/chat/completions", {"messages": []}),
        ("/v1/completions", {"prompt": 5}),
        ("/completion", {"n_predict": 3}),
    ],
)
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


def test_props_carry_what_the_engine_says(gateway: Gateway) -> None:
    with gateway.client() as http:
        props = http.get("/props").json()
    assert props["model_alias"] == MODEL and props["model_path"].endswith(".gguf") and "/" not in props["model_path"]
    params = props["default_generation_settings"]["params"]
    assert "temperature" in params and "top_k" in params and props["default_generation_settings"]["n_ctx"] == 512
    assert props["chat_template"] and props["modalities"] == {"vision": False, "video": False, "audio": False}
    assert props["total_slots"] == 2


def test_slots_list_the_models_slots_without_prompts(gateway: Gateway) -> None:
    with gateway.client() as http:
        slots = http.get("/slots").json()
    assert [s["id"] for s in slots] == [0, 1]
    assert all(s["n_ctx"] == 512 and s["is_processing"] in (True, False) and "prompt" not in s for s in slots)


@pytest.mark.parametrize("path", ["/chat/completions/input_tokens", "/v1/chat/completions/input_tokens"])
def test_chat_input_tokens(gateway: Gateway, path: str) -> None:
    with gateway.client() as http:
        short = http.post(path, json={"messages": [{"role": "user", "content": "Hi"}]})
        longer = http.post(path, json={"messages": [{"role": "user", "content": "Hi there, how are you today?"}]})
    assert short.status_code == 200, short.text
    assert 0 < short.json()["input_tokens"] < longer.json()["input_tokens"]


def test_root_says_what_this_is_without_a_token(gateway: Gateway) -> None:
    root = httpx.get(gateway.base + "/", timeout=10).json()
    assert root["name"] == "Graycat AI Server" and root["docs"] == "/docs" and root["health"] == "/health"


def _deep_schema(levels: int) -> dict:  # type: ignore[type-arg]
    schema: dict = {"type": "string"}  # type: ignore[type-arg]
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/messages",
            {
                "model": MODEL,
                "max_tokens": 4,
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"name": "f", "input_schema": _deep_schema(300)}],
            },
        ),
        (
            "/v1/responses",
            {
                "model": MODEL,
                "input": "hi",
                "tools": [{"type": "function", "name": "f", "parameters": _deep_schema(300)}],
            },
        ),
        (
            "/v1/responses",
            {
                "model": MODEL,
                "input": "hi",
                "text": {"format": {"type": "json_schema", "name": "x", "schema": _deep_schema(300)}},
            },
        ),
    ],
)
def test_schemas_of_anthropic_and_responses_requests_are_bounded(gateway: Gateway, path: str, body: dict) -> None:  # type: ignore[type-arg]
    with gateway.client() as http:
        resp = http.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert "MAX_SCHEMA_DEPTH" in resp.text


@pytest.mark.parametrize("stream", [False, True])
def test_an_image_for_a_model_without_vision_is_a_400_not_the_engines_500(gateway: Gateway, stream: bool) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    with gateway.client() as http:
        resp = http.post(
            "/v1/chat/completions",
            json={
                "model": MODEL,
                "max_tokens": 4,
                "stream": stream,
                "messages": [{"role": "user", "content": content}],
            },
        )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert "image input is not supported" in error["message"] and error["type"] == "invalid_request_error"
