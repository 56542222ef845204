"""Dialect translation and error shapes, without servers."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from graycat.api.dialects import is_deterministic, llamacpp, openai, openai_tools
from graycat.api.errors import error_body
from graycat.chat_templates import template_name


def test_llamacpp_completion_keeps_unknown_fields_and_maps_to_engine() -> None:
    req = llamacpp.CompletionRequest.model_validate(
        {"prompt": "hi", "stream": True, "n_predict": 12, "tfs_z": 0, "penalty_prompt": "", "messages": []}
    )
    spec = llamacpp.completion_job(req)
    assert (spec.endpoint, spec.stream, spec.model, spec.max_new_tokens) == ("/completion", True, None, 12)
    assert llamacpp.completion_job(llamacpp.CompletionRequest(prompt="x")).max_new_tokens is None


@pytest.mark.parametrize(
    "body",
    [{}, {"prompt": ""}, {"prompt": []}, {"prompt": "x", "n_predict": "many"}, {"prompt": "x", "stream": "perhaps"}],
)
def test_llamacpp_rejects_bad_bodies(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        llamacpp.CompletionRequest.model_validate(body)


def test_sse_event_is_one_data_line_and_a_blank_line() -> None:
    assert llamacpp.sse_event(b'{"content":"a"}') == b'data: {"content":"a"}\n\n'


def test_openai_chat_uses_max_completion_tokens_first() -> None:
    req = openai.ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "max_completion_tokens": 7,
            "tools": [],
        }
    )
    spec = openai.chat_job(req)
    assert (spec.endpoint, spec.model, spec.max_new_tokens) == ("/v1/chat/completions", "m", 7)


@pytest.mark.parametrize(
    "body", [{"messages": []}, {"messages": [{"content": "no role"}]}, {"messages": [{"role": "user"}], "n": 0}]
)
def test_openai_chat_rejects_bad_bodies(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        openai.ChatCompletionRequest.model_validate(body)


def test_openai_model_list_shape() -> None:
    listed = openai.model_list({"b": {"kind": "llm"}, "a": {"kind": "llm", "n_ctx": 512}})
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["a", "b"]
    assert all(m["object"] == "model" for m in listed["data"])


def test_error_shapes_follow_the_dialect() -> None:
    native = orjson.loads(error_body("/completion", 404, "gone", "model_not_found"))
    assert native == {"error": {"code": 404, "message": "gone", "type": "not_found_error"}}
    oai = orjson.loads(error_body("/v1/chat/completions", 404, "gone", "model_not_found", "model"))
    assert oai == {"error": {"message": "gone", "type": "not_found_error", "param": "model", "code": "model_not_found"}}


@pytest.mark.parametrize(
    ("seed", "temperature", "expected"),
    [
        (None, None, False),
        (-1, 0.8, False),
        (4294967295, None, False),
        (0, None, True),
        (42, 0.7, True),
        (None, 0, True),
        (-1, 0.0, True),
    ],
)
def test_deterministic_requests(seed: int | None, temperature: float | None, expected: bool) -> None:
    assert is_deterministic(seed, temperature) is expected


def test_mid_stream_errors_in_each_dialect() -> None:
    native = orjson.loads(llamacpp.stream_error(502, "stopped")[6:])
    assert native == {"error": {"code": 502, "message": "stopped", "type": "server_error"}}
    oai = openai.stream_error(502, "stopped")
    assert oai.startswith(b"data: ") and oai.endswith(b"\n\n")
    assert orjson.loads(oai[6:])["error"]["message"] == "stopped"


@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("{{ '<|im_start|>' + role }}", "chatml"),
        ("<|start_header_id|>{{ role }}<|end_header_id|>", "llama3 chat"),
        ("<start_of_turn>user", "gemma"),
        ("[INST] {{ content }} [/INST]", "mistral instruct"),
        ("something new", "chatml"),
        (None, "chatml"),
    ],
)
def test_template_names_llm_for_unity_knows(template: str | None, name: str) -> None:
    assert template_name(template) == name


def test_a_tool_call_cut_short_stays_text() -> None:
    engine = {
        "id": "c",
        "choices": [
            {"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": '{"name": "f", "argu'}}
        ],
    }
    out = orjson.loads(openai_tools.tool_call_answer(orjson.dumps(engine)))
    assert out["choices"][0]["finish_reason"] == "length" and "tool_calls" not in out["choices"][0]["message"]
    whole = {
        **engine,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": '{"name": "f", "arguments": {"x": 1}}'},
            }
        ],
    }
    call = orjson.loads(openai_tools.tool_call_answer(orjson.dumps(whole)))["choices"][0]
    assert call["finish_reason"] == "tool_calls"
    assert call["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x":1}'}
