"""OpenAI routes through real processes, driven by the official `openai` SDK."""

from __future__ import annotations

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
    out = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello"}],
                                      max_tokens=8, temperature=0)
    assert out.object == "chat.completion" and out.model == MODEL
    assert out.choices[0].message.role == "assistant" and out.choices[0].message.content
    assert out.usage is not None and out.usage.completion_tokens <= 8 and out.usage.prompt_tokens > 0


def test_chat_completion_stream(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="default", messages=[{"role": "user", "content": "Count: 1, 2,"}],
                                         max_tokens=10, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].choices[0].finish_reason in {"length", "stop"}


def test_text_completion_with_and_without_stream(sdk: openai.OpenAI) -> None:
    out = sdk.completions.create(model=MODEL, prompt="The sky is", max_tokens=5)
    assert out.choices[0].text
    streamed = "".join(c.choices[0].text for c in sdk.completions.create(
        model=MODEL, prompt="The sky is", max_tokens=5, stream=True) if c.choices)
    assert streamed


def test_openai_stream_ends_with_done(gateway: Gateway) -> None:
    resp = ChunkedResponse(gateway.base, "/v1/chat/completions",
                           {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}, TOKEN)
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
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        sdk.chat.completions.create(model=MODEL, messages=[])
    assert "messages" in str(invalid.value)
    bad = openai.OpenAI(base_url=sdk.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
