"""The Anthropic dialect's pure translation: requests to OpenAI chat for required tool use, answers back."""

from __future__ import annotations

import orjson
import pytest

from graycat.api.dialects import anthropic

TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def _req(**fields: object) -> anthropic.MessagesRequest:
    return anthropic.MessagesRequest.model_validate(
        {"max_tokens": 16, "messages": [{"role": "user", "content": "Weather?"}], **fields}
    )


def test_tool_choice() -> None:
    assert anthropic.tool_choice(_req(tools=[TOOL])) is None
    assert anthropic.tool_choice(_req(tools=[TOOL], tool_choice={"type": "auto"})) == "auto"
    assert anthropic.tool_choice(_req(tools=[TOOL], tool_choice={"type": "any"})) == "required"
    named = anthropic.tool_choice(_req(tools=[TOOL], tool_choice={"type": "tool", "name": "get_weather"}))
    assert named == {"type": "function", "function": {"name": "get_weather"}} and anthropic.required(named)
    assert not anthropic.required("auto")
    with pytest.raises(ValueError, match="not among the tools"):
        anthropic.tool_choice(_req(tools=[TOOL], tool_choice={"type": "tool", "name": "nope"}))


def test_conversation_with_tool_use_and_result_as_openai_chat() -> None:
    req = _req(
        system=[{"type": "text", "text": "Be brief."}],
        tools=[TOOL],
        tool_choice={"type": "any"},
        temperature=0,
        stop_sequences=["\n"],
        stream=True,
        ignore_eos=True,
        metadata={"user_id": "u"},
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "Sunny"}]},
        ],
    )
    chat = orjson.loads(anthropic.as_openai_chat(req, "required"))
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    assert chat["messages"][0]["content"] == "Be brief."
    assert chat["messages"][2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "Sunny"}
    assert chat["tool_choice"] == "required" and chat["tools"][0]["function"]["parameters"] == TOOL["input_schema"]
    assert chat["temperature"] == 0 and chat["stop"] == ["\n"] and chat["max_tokens"] == 16
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["ignore_eos"] is True and "metadata" not in chat and "stop_sequences" not in chat


def _chunk(**fields: object) -> bytes:
    return orjson.dumps({"id": "chatcmpl-1", "model": "m", **fields})


def test_chat_stream_as_anthropic_events() -> None:
    render = anthropic.ChatStream()
    out = b"".join(
        render(c)
        for c in [
            _chunk(
                choices=[{"index": 0, "delta": {"role": "assistant", "content": None}}],
                timings={"cache_n": 4, "prompt_n": 3},
            ),
            _chunk(choices=[{"index": 0, "delta": {"content": "Let me"}}]),
            _chunk(
                choices=[
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "call_1",
                                    "type": "function",
                                    "function": {"name": "f", "arguments": '{"a"'},
                                }
                            ]
                        },
                    }
                ]
            ),
            _chunk(choices=[{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]),
            _chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
            _chunk(
                choices=[],
                usage={"prompt_tokens": 7, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4}},
            ),
            b"[DONE]",
        ]
    )
    events = [orjson.loads(e.split(b"\ndata: ")[1]) for e in out.split(b"\n\n") if e]
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"]["id"] == "msg_1" and events[2]["delta"] == {"type": "text_delta", "text": "Let me"}
    assert events[0]["message"]["usage"] == {"cache_read_input_tokens": 4, "input_tokens": 3, "output_tokens": 0}
    assert events[4]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}
    assert events[4]["index"] == 1 and events[6]["delta"] == {"type": "input_json_delta", "partial_json": ":1}"}
    assert events[8]["delta"]["stop_reason"] == "tool_use"
    assert events[8]["usage"] == {"cache_read_input_tokens": 4, "input_tokens": 3, "output_tokens": 5}


def test_openai_tool_call_answer_as_message_and_stream() -> None:
    answer = orjson.dumps(
        {
            "model": "m",
            "usage": {"prompt_tokens": 9, "completion_tokens": 7},
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_abc",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                            }
                        ],
                    },
                }
            ],
        }
    )
    message = orjson.loads(anthropic.from_openai_chat(answer))
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {"cache_read_input_tokens": 0, "input_tokens": 9, "output_tokens": 7}
    assert message["content"] == [
        {"type": "tool_use", "id": "toolu_abc", "name": "get_weather", "input": {"city": "Paris"}}
    ]
    events = [e for e in anthropic.as_stream(orjson.dumps(message)).split(b"\n\n") if e]
    kinds = [e.split(b"\n")[0].removeprefix(b"event: ").decode() for e in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = orjson.loads(events[2].split(b"\ndata: ")[1])["delta"]
    assert delta == {"type": "input_json_delta", "partial_json": '{"city":"Paris"}'}


def test_a_failed_stream_ends_with_an_error_event() -> None:
    assert anthropic.stream_error(503, "busy").startswith(b"event: error\ndata: ")


def test_a_stream_asks_the_engine_for_timings_with_each_chunk() -> None:
    chat = orjson.loads(anthropic.as_openai_chat(_req(stream=True), None))
    assert chat["timings_per_token"] is True and chat["stream_options"] == {"include_usage": True}
    assert "timings_per_token" not in orjson.loads(anthropic.as_openai_chat(_req(), None))


def test_image_blocks_reach_the_engine_as_openai_image_parts() -> None:
    chat = orjson.loads(
        anthropic.as_openai_chat(
            _req(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                            {"type": "text", "text": "What is this?"},
                            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                        ],
                    }
                ]
            ),
            None,
        )
    )
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ],
        }
    ]


def test_no_messages_is_a_request_as_llama_cpp_takes_it() -> None:
    chat = orjson.loads(anthropic.as_openai_chat(_req(messages=[], system="Say hi."), None))
    assert chat["messages"] == [{"role": "system", "content": "Say hi."}]


def test_message_start_waits_for_the_chunk_with_the_prompts_timings() -> None:
    render = anthropic.ChatStream()
    assert render(_chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": None}}])) == b""
    first = render(_chunk(choices=[{"index": 0, "delta": {"content": "Hi"}}], timings={"cache_n": 0, "prompt_n": 9}))
    start = orjson.loads(first.split(b"\n\n")[0].split(b"\ndata: ")[1])
    assert start["type"] == "message_start" and start["message"]["usage"]["input_tokens"] == 9
