"""The bounds on what reaches llama.cpp's native parsers (graycat/api/access/parser_limits.py), without servers."""

from __future__ import annotations

from typing import Any

import pytest

from graycat.api.access.parser_limits import ParserLimits, TooComplex, check_fields, grammar_depth, regex_depth
from graycat.api.dialects import BadField

LIMITS = ParserLimits(grammar_bytes=4096, grammar_depth=10, schema_bytes=4096, schema_depth=12)


def nested_grammar(depth: int) -> str:
    return "root ::= " + "(" * depth + '"a"' + ")" * depth


def refused(fields: dict[str, Any]) -> TooComplex:
    with pytest.raises(TooComplex) as caught:
        check_fields(fields, LIMITS)
    return caught.value


def test_grammar_depth_counts_groups_only() -> None:
    assert grammar_depth(nested_grammar(7)) == 7
    # parentheses inside literals, character classes and comments are not groups
    assert grammar_depth('root ::= "((((" [()\\]((] x # ((((((\nx ::= ("a" ("b"))') == 2
    assert grammar_depth('root ::= "\\"(" ("a")') == 1  # an escaped quote does not end the literal


def test_regex_depth_skips_escapes_and_classes() -> None:
    assert regex_depth("^((a)(b(c)))$") == 3
    assert regex_depth(r"^\(\(\([(((]$") == 0


def test_real_grammars_and_schemas_pass() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Z][a-z]+$"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
        },
        "$defs": {"tag": {"type": "string", "enum": ["a", "b"]}},
    }
    check_fields(
        {
            "grammar": 'root ::= ("yes" | "no") ws\nws ::= [ \\t\\n]*',
            "json_schema": schema,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
            "grammar_triggers": [{"type": "word", "value": "((((((((((((("}],
        },
        LIMITS,
    )


def test_deep_or_large_grammars_are_refused_with_the_setting_named() -> None:
    deep = refused({"grammar": nested_grammar(11)})
    assert deep.param == "grammar" and "MAX_GRAMMAR_DEPTH" in str(deep) and deep.code == "input_too_complex"
    assert "MAX_GRAMMAR_BYTES" in str(refused({"grammar": 'root ::= "' + "a" * 5000 + '"'}))


def test_trigger_patterns_are_bounded_and_trigger_words_are_not() -> None:
    pattern = "(" * 11 + "a" + ")" * 11
    assert (
        refused({"grammar_triggers": [{"type": "word", "value": "x"}, {"type": 2, "value": pattern}]}).param
        == "grammar_triggers.1.value"
    )
    assert refused({"grammar_triggers": [{"type": "pattern_full", "value": pattern}]})


def test_probabilities_per_token_are_bounded() -> None:
    """llama.cpp sends as many probabilities per token as asked for, up to its whole vocabulary: 64 tokens with
    all of SmolLM2's made a 286 MiB answer and took 3 GiB of engine memory."""
    limits = ParserLimits(4096, 10, 4096, 12, probs=100)
    for name in ("n_probs", "top_logprobs", "logprobs"):
        with pytest.raises(TooComplex) as caught:
            check_fields({name: 49152}, limits)
        assert caught.value.param == name and "MAX_N_PROBS" in str(caught.value)
        check_fields({name: 100}, limits)
    check_fields({"logprobs": True, "top_logprobs": 20}, limits)


@pytest.mark.parametrize("kind", [-1, 4, 99, 1e10, 2.0])
def test_a_trigger_type_llama_cpp_does_not_know_is_refused(kind: float) -> None:
    """llama.cpp aborts (SIGABRT) on a trigger type it has no case for: the engine restarts and every job on it
    fails, so one request could keep a worker's engine down."""
    with pytest.raises(BadField) as caught:
        check_fields({"grammar_triggers": [{"type": 1, "value": "x"}, {"type": kind, "value": "x"}]}, LIMITS)
    assert caught.value.param == "grammar_triggers.1.type"
    with pytest.raises(BadField) as caught:  # llama.cpp iterates an object's values as it does a list
        check_fields({"grammar_triggers": {"t": {"type": kind, "value": "x"}}}, LIMITS)
    assert caught.value.param == "grammar_triggers.t.type"
    check_fields({"grammar_triggers": [{"type": t, "value": "x", "token": 5} for t in (0, 1, 2, 3)]}, LIMITS)


def nested_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"json_schema": nested_schema(13)}, "json_schema"),
        ({"format": nested_schema(13)}, "format"),
        ({"response_format": {"type": "json_object", "schema": nested_schema(13)}}, "response_format.schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": nested_schema(13)}}},
            "response_format.json_schema.schema",
        ),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
                    {"type": "function", "function": {"name": "g", "parameters": nested_schema(13)}},
                ]
            },
            "tools.1.function.parameters",
        ),
    ],
)
def test_deep_schemas_are_refused_wherever_they_are(fields: dict[str, Any], param: str) -> None:
    error = refused(fields)
    assert error.param == param and "MAX_SCHEMA_DEPTH" in str(error)


def ref_chain(length: int) -> dict[str, Any]:
    defs: dict[str, Any] = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(length)}
    defs[f"d{length}"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def test_each_ref_followed_counts_as_a_level() -> None:
    """A flat schema whose $refs chain: llama.cpp recurses once per reference (2,500 crashed it)."""
    check_fields({"json_schema": ref_chain(4)}, LIMITS)
    assert "MAX_SCHEMA_DEPTH" in str(refused({"json_schema": ref_chain(40)}))
    assert "MAX_SCHEMA_DEPTH" in str(refused({"json_schema": ref_chain(2500)}))  # no recursion error here either


def test_recursive_schemas_are_allowed_and_shared_definitions_walked_once() -> None:
    tree = {
        "$defs": {
            "node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}
        },
        "$ref": "#/$defs/node",
    }
    check_fields({"json_schema": tree}, LIMITS)
    # each definition refers to the next one twice: walked naively that is 2^30 visits
    fan = {
        "$defs": {
            f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(30)
        },
        "$ref": "#/$defs/d0",
    }
    fan["$defs"]["d30"] = {"type": "string"}
    big = ParserLimits(4096, 10, 1 << 20, 200)
    check_fields({"json_schema": fan}, big)


def test_patterns_inside_schemas_and_total_schema_size() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^" + "(" * 11 + ")" * 11 + "$"}}}
    error = refused({"json_schema": schema})
    assert error.param == "json_schema/properties/a/pattern" and "MAX_GRAMMAR_DEPTH" in str(error)
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(100)}}
    assert "MAX_SCHEMA_BYTES" in str(refused({"json_schema": wide, "format": wide}))


def test_unmeasurable_schemas_are_refused_not_failed() -> None:
    assert refused({"json_schema": {"type": "string", "maxLength": 10**30}}).param == "json_schema"
    deep_ok = ParserLimits(4096, 10, 1 << 20, 1000)
    with pytest.raises(TooComplex):
        check_fields({"json_schema": nested_schema(300)}, deep_ok)
