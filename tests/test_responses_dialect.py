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
    response = {"id": "resp_1", "output": [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi "},
                                                            {"type": "output_text", "text": "Zorblax"}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}",
         "status": "completed"}]}
    assert openai_responses.output_items(response) == [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi Zorblax"}]},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}]


def test_the_completed_event_carries_the_response() -> None:
    done = orjson.dumps({"type": "response.completed", "response": {"id": "resp_1"}})
    assert openai_responses.completed(done) == {"id": "resp_1"}
    assert openai_responses.completed(b'{"type":"response.output_text.delta","delta":"x"}') is None
    assert typed_sse_event(done).startswith(b"event: response.completed\ndata: {")
