"""The Responses dialect's pure parts: a conversation put before the input, a response as later input."""

from __future__ import annotations

import orjson

from graycat.api.dialects import openai_responses, typed_sse_event


def test_history_goes_before_the_input_and_previous_id_is_dropped() -> None:
    history = [{"role": "user", "content": "My name is Zorblax."}]
    raw = orjson.dumps({"input": "What is my name?", "previous_response_id": "resp_1", "instructions": "Brief."})
    body = orjson.loads(openai_responses.with_history(raw, history))
    assert body == {"instructions": "Brief.", "input": [*history, {"role": "user", "content": "What is my name?"}]}


def test_a_response_as_input_items_of_the_next_turn() -> None:
    response = {
        "id": "resp_1",
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi "}, {"type": "output_text", "text": "Zorblax"}],
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "f",
                "arguments": "{}",
                "status": "completed",
            },
        ],
    }
    assert openai_responses.output_items(response) == [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi Zorblax"}]},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
    ]


def test_the_completed_event_carries_the_response() -> None:
    done = orjson.dumps({"type": "response.completed", "response": {"id": "resp_1"}})
    assert openai_responses.completed(done) == {"id": "resp_1"}
    assert openai_responses.completed(b'{"type":"response.output_text.delta","delta":"x"}') is None
    assert typed_sse_event(done).startswith(b"event: response.completed\ndata: {")


def test_required_function_call_as_openai_chat_and_back() -> None:
    req = openai_responses.ResponsesRequest.model_validate(
        {
            "input": [{"type": "function_call_output", "call_id": "call_1", "output": "Sunny"}],
            "instructions": "Brief.",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": "required",
            "max_output_tokens": 20,
        }
    )
    history = [
        {"role": "user", "content": "Weather?"},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
    ]
    choice = openai_responses.required_tool_choice(req)
    assert choice == "required"
    chat = orjson.loads(openai_responses.as_openai_chat(req, choice, history))
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"}
    assert chat["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert chat["max_tokens"] == 20 and chat["tool_choice"] == "required"
    answer = orjson.dumps(
        {
            "model": "m",
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [{"id": "call_9", "function": {"name": "f", "arguments": "{}"}}],
                    }
                }
            ],
        }
    )
    response = orjson.loads(openai_responses.from_openai_chat(answer))
    assert response["output"][0]["type"] == "function_call" and response["output"][0]["call_id"] == "call_9"
    assert response["usage"] == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    kinds = [
        e.split(b"\n")[0][7:].decode() for e in openai_responses.as_stream(orjson.dumps(response)).split(b"\n\n") if e
    ]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_payloads_without_a_type_stay_plain_data_events() -> None:
    assert typed_sse_event(b"[DONE]") == b"data: [DONE]\n\n"
    assert typed_sse_event(b'{"content":"x"}') == b'data: {"content":"x"}\n\n'
