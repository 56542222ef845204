"""OpenAI routes through real processes, driven by the official `openai` SDK."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import MODEL, TOKEN, Gateway
from tests.rawhttp import ChunkedResponse

pytestmark = pytest.mark.e2e


@pytest.fixture
def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=TOKEN, max_retries=0, timeout=60)


def test_models_lists_what_live_workers_serve(sdk: openai.OpenAI) -> None:
    assert MODEL in [m.id for m in sdk.models.list()]


def test_chat_completion(sdk: openai.OpenAI) -> None:
    out = sdk.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello"}], max_tokens=8, temperature=0
    )
    assert out.object == "chat.completion" and out.model == MODEL
    assert out.choices[0].message.role == "assistant" and out.choices[0].message.content
    assert out.usage is not None and out.usage.completion_tokens <= 8 and out.usage.prompt_tokens > 0


def test_chat_completion_stream(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Count: 1, 2,"}], max_tokens=10, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices[0].finish_reason in {"length", "stop"}


def test_text_completion_with_and_without_stream(sdk: openai.OpenAI) -> None:
    out = sdk.completions.create(model=MODEL, prompt="The sky is", max_tokens=5)
    assert out.choices[0].text
    streamed = "".join(
        c.choices[0].text
        for c in sdk.completions.create(model=MODEL, prompt="The sky is", max_tokens=5, stream=True)
        if c.choices
    )
    assert streamed


def test_openai_stream_ends_with_done(gateway: Gateway) -> None:
    resp = ChunkedResponse(
        gateway.base,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True},
        TOKEN,
    )
    try:
        chunks = list(resp.chunks())
    finally:
        resp.close()
    assert chunks[-1] == b"data: [DONE]\n\n"
    assert all(c.startswith(b"data: {") and c.endswith(b"\n\n") for c in chunks[:-1])


def test_errors_in_openai_format(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as invalid:
        sdk.chat.completions.create(model=MODEL, messages=[])
    assert "messages" in str(invalid.value)
    bad = openai.OpenAI(base_url=sdk.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_required_tool_call_round_trip(sdk: openai.OpenAI) -> None:
    out = sdk.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=40, temperature=0
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments)["city"], str)
    answer = sdk.chat.completions.create(
        model=MODEL,
        max_tokens=20,
        temperature=0,
        messages=[
            *ASK,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny", "celsius": 21}'},
        ],
    )
    assert answer.choices[0].message.content


def test_named_tool_choice_streamed(sdk: openai.OpenAI) -> None:
    other = {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string", "maxLength": 8}},
                "required": ["zone"],
            },
        },
    }
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL,
            messages=ASK,
            tools=[WEATHER, other],
            max_tokens=40,
            stream=True,
            temperature=0,
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            stream_options={"include_usage": True},
        )
    )
    calls = [c for chunk in chunks if chunk.choices for c in chunk.choices[0].delta.tool_calls or []]
    assert [c.function.name for c in calls] == ["get_time"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        sdk.chat.completions.create(
            model=MODEL, messages=ASK, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}
        )


def test_response_format_json_schema_parses(sdk: openai.OpenAI) -> None:
    out = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give a person as JSON"}],
        max_tokens=60,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "person",
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
                    "required": ["name", "age"],
                },
            },
        },
    )
    person = json.loads(out.choices[0].message.content or "")
    assert isinstance(person["name"], str) and isinstance(person["age"], int)
    obj = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Any JSON object"}],
        max_tokens=30,
        temperature=0,
        response_format={"type": "json_object"},
    )
    assert obj.choices[0].finish_reason == "length" or isinstance(
        json.loads(obj.choices[0].message.content or ""), dict
    )


def test_n_logprobs_seed_and_usage_in_stream(sdk: openai.OpenAI) -> None:
    out = sdk.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=4, n=2, logprobs=True, top_logprobs=2, seed=3, temperature=1.0
    )
    assert [c.index for c in out.choices] == [0, 1]
    assert out.choices[0].logprobs and len(out.choices[0].logprobs.content[0].top_logprobs) == 2
    again = sdk.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, seed=3, temperature=1.0)
    assert again.choices[0].message.content == out.choices[0].message.content
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL, messages=ASK, max_tokens=4, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
