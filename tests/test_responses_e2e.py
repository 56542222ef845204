"""OpenAI's Responses API through real processes, driven by the official `openai` SDK."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import ADMIN, MODEL, TOKEN, Gateway

pytestmark = pytest.mark.e2e


@pytest.fixture
def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=TOKEN, max_retries=0, timeout=60)


def test_text_response(sdk: openai.OpenAI) -> None:
    out = sdk.responses.create(model=MODEL, input="Say hello", instructions="Answer briefly.", max_output_tokens=8)
    assert out.object == "response" and out.status == "completed"
    assert out.output_text and out.usage is not None and 0 < out.usage.output_tokens <= 8


def test_message_list_input_and_stream_events(sdk: openai.OpenAI) -> None:
    stream = sdk.responses.create(
        model=MODEL, max_output_tokens=6, stream=True, input=[{"role": "user", "content": "Count: 1, 2,"}]
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and events[-1].response.output_text == text


@pytest.mark.parametrize("stream", [False, True])
def test_previous_response_id_continues_the_conversation(sdk: openai.OpenAI, gateway: Gateway, stream: bool) -> None:
    if stream:
        first_id = [
            e for e in sdk.responses.create(model=MODEL, input="My name is Zorblax.", max_output_tokens=4, stream=True)
        ][-1].response.id
    else:
        first_id = sdk.responses.create(model=MODEL, input="My name is Zorblax.", max_output_tokens=4).id
    count = sdk.responses.input_tokens.count(model=MODEL, input="What is my name?")
    second = sdk.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first_id, max_output_tokens=4
    )
    assert second.status == "completed" and second.usage is not None
    assert second.usage.input_tokens > count.input_tokens  # the first turn came before the question
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model=MODEL, input="x", previous_response_id="resp_unknown", max_output_tokens=2)
    other = openai.OpenAI(base_url=gateway.base + "/v1", api_key=ADMIN, max_retries=0)
    with pytest.raises(openai.NotFoundError):  # another token cannot continue it
        other.responses.create(model=MODEL, input="x", previous_response_id=first_id, max_output_tokens=2)


def test_invalid_response_request_is_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        sdk.responses.create(model=MODEL, input=[], max_output_tokens=4)


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize("stream", [False, True])
def test_required_function_call(sdk: openai.OpenAI, stream: bool) -> None:
    args = {
        "model": MODEL,
        "input": "What is the weather in Paris?",
        "tools": [WEATHER],
        "max_output_tokens": 60,
        "tool_choice": {"type": "function", "name": "get_weather"},
    }
    if stream:
        events = list(sdk.responses.create(stream=True, **args))  # type: ignore[call-overload]
        assert "response.function_call_arguments.delta" in [e.type for e in events]
        out = events[-1].response
    else:
        out = sdk.responses.create(**args)  # type: ignore[call-overload]
    call = out.output[-1]
    assert call.type == "function_call" and call.name == "get_weather"
    assert "city" in json.loads(call.arguments)
    follow = sdk.responses.create(
        model=MODEL,
        previous_response_id=out.id,
        max_output_tokens=8,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}],
    )
    assert follow.status == "completed"


def test_a_tokens_cached_prompt_never_serves_another_token(gateway: Gateway) -> None:
    story = "Tell me about the long history of the city of Rome, from its founding to the empire. " * 3
    body = {"model": MODEL, "input": story, "max_output_tokens": 2}

    def cached(token: str) -> int:
        with gateway.client(token) as http:
            resp = http.post("/v1/responses", json=body)
        assert resp.status_code == 200, resp.text
        return int(resp.json()["usage"]["input_tokens_details"]["cached_tokens"])

    cached(TOKEN)
    assert cached(ADMIN) == 0  # the same prompt, another token: computed again
    assert cached(TOKEN) > 0  # its own slot still holds it
