"""Anthropic's Messages API through real processes, driven by the official `anthropic` SDK."""

from __future__ import annotations

import anthropic
import pytest

from tests.conftest import ADMIN, MODEL, TOKEN, Gateway, wait_until

pytestmark = pytest.mark.e2e

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def sdk(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base, api_key=TOKEN, max_retries=0, timeout=60)


def test_message_with_system_and_turns(sdk: anthropic.Anthropic) -> None:
    out = sdk.messages.create(
        model=MODEL,
        max_tokens=8,
        system="You answer briefly.",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
        ],
    )
    assert out.type == "message" and out.role == "assistant"
    assert out.content[0].type == "text" and out.content[0].text
    assert out.stop_reason in {"end_turn", "max_tokens"}
    assert out.usage.input_tokens > 0 and 0 < out.usage.output_tokens <= 8


def test_message_stream_events(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model=MODEL, max_tokens=6, messages=[{"role": "user", "content": "Count: 1, 2,"}]) as s:
        kinds = [event.type for event in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.content[0].text and final.stop_reason in {"end_turn", "max_tokens"}


@pytest.mark.parametrize("stream", [False, True])
def test_required_tool_use(sdk: anthropic.Anthropic, stream: bool) -> None:
    args = {
        "model": MODEL,
        "max_tokens": 60,
        "tools": [WEATHER],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
    }
    if stream:
        with sdk.messages.stream(**args) as s:  # type: ignore[arg-type]
            out = s.get_final_message()
    else:
        out = sdk.messages.create(**args)  # type: ignore[arg-type]
    assert out.stop_reason == "tool_use"
    use = out.content[-1]
    assert use.type == "tool_use" and use.name == "get_weather" and isinstance(use.input, dict)
    assert "city" in use.input


def test_tool_result_turn(sdk: anthropic.Anthropic) -> None:
    out = sdk.messages.create(
        model=MODEL,
        max_tokens=8,
        tools=[WEATHER],
        messages=[  # type: ignore[list-item]
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 21 C"}]},
        ],
    )
    assert out.content and out.usage.output_tokens > 0


def test_usage_tells_the_prompt_tokens_read_from_the_cache(sdk: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "Tell me about the moon and the tides, please."}]
    first = sdk.messages.create(model=MODEL, max_tokens=2, messages=messages)  # type: ignore[arg-type]
    again = sdk.messages.create(model=MODEL, max_tokens=2, messages=messages)  # type: ignore[arg-type]
    prompt = first.usage.input_tokens + (first.usage.cache_read_input_tokens or 0)
    assert again.usage.cache_read_input_tokens and again.usage.cache_read_input_tokens > 0
    assert again.usage.input_tokens + again.usage.cache_read_input_tokens == prompt


def test_stream_starts_with_the_prompts_token_count(sdk: anthropic.Anthropic) -> None:
    with sdk.messages.stream(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "Say hi"}]) as s:
        start = next(event for event in s if event.type == "message_start")
        final = s.get_final_message()
    told = start.message.usage.input_tokens + (start.message.usage.cache_read_input_tokens or 0)
    assert told > 0 and told == final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)


def test_no_messages_is_answered_from_the_system_prompt(sdk: anthropic.Anthropic) -> None:
    out = sdk.messages.create(model=MODEL, max_tokens=4, system="Say hello.", messages=[])
    assert out.type == "message" and out.usage.output_tokens > 0


def test_an_image_reaches_the_engine(gateway: Gateway) -> None:
    """SmolLM2 has no vision: the engine's refusal comes back as the client's error (a 400, not the engine's
    500), where dropping the image would answer."""
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "text", "text": "What is this?"},
    ]
    with gateway.client() as http:
        resp = http.post(
            "/v1/messages", json={"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": content}]}
        )
    assert resp.status_code == 400
    assert "image input is not supported" in resp.json()["error"]["message"]


def test_count_tokens(sdk: anthropic.Anthropic) -> None:
    short = sdk.messages.count_tokens(model=MODEL, system="Be brief.", messages=[{"role": "user", "content": "Hi"}])
    longer = sdk.messages.count_tokens(
        model=MODEL, system="Be brief.", messages=[{"role": "user", "content": "Hi there, how are you today?"}]
    )
    assert 0 < short.input_tokens < longer.input_tokens


def test_invalid_request_is_400_in_anthropics_shape(sdk: anthropic.Anthropic, gateway: Gateway) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        sdk.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "robot", "content": "hi"}])  # type: ignore[list-item,typeddict-item]
    body = bad.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    with gateway.client(token=None) as http:
        missing = http.post(
            "/v1/messages",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": TOKEN},
        )
    assert missing.status_code == 400 and "max_tokens" in missing.json()["error"]["message"]
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.base, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, max_tokens=4, messages=[{"role": "user", "content": "hi"}]
        )


def test_messages_and_responses_count_against_the_quota(gateway: Gateway) -> None:
    with gateway.client(ADMIN) as admin:
        made = admin.post("/admin/tokens", json={"name": "dialects-quota", "daily_tokens": 10_000})
    assert made.status_code == 201, made.text
    secret = made.json()["token"]
    message = {"model": MODEL, "max_tokens": 5, "ignore_eos": True, "messages": [{"role": "user", "content": "Hi"}]}
    response = {"model": MODEL, "max_output_tokens": 5, "ignore_eos": True, "input": "Hi"}
    with gateway.client(secret) as http:
        for route, body in (
            ("/v1/messages", message),
            ("/v1/messages", {**message, "stream": True}),
            ("/v1/responses", response),
            ("/v1/responses", {**response, "stream": True}),
        ):
            assert http.post(route, json=body).status_code == 200
    with gateway.client(ADMIN) as admin:

        def counted() -> dict[str, int]:
            found = [u for u in admin.get("/admin/usage").json()["tokens"].values() if u["name"] == "dialects-quota"]
            return found[0] if found else {}

        wait_until(lambda: counted().get("jobs", 0) >= 4, 60, "the four jobs to be counted")
        assert counted()["completion_tokens"] == 20
