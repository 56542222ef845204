"""Bounds on what reaches llama.cpp's native parsers: a GBNF `grammar`, JSON schemas (`json_schema`,
`response_format`, Ollama's `format`, the parameters of `tools`) and regular expressions (a schema's `pattern`,
the patterns of `grammar_triggers`). Those parsers recurse once per nesting level on a fixed thread stack, so
a deep enough input crashes the engine (measured with 8 MiB stacks: a grammar nested about 22,000 levels, a
chain of about 2,500 `$ref`s, a trigger pattern nested about 15,000 groups): they are refused here with 400."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel

from graycat.api.dialects import BadField

_PATTERN_TRIGGERS = {2, 3, "pattern", "pattern_full"}  # llama.cpp's COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN(_FULL)
_TRIGGER_TYPES = range(4)  # token, word, pattern, pattern_full: llama.cpp aborts on any other number
# Probabilities per generated token: llama.cpp sends as many as asked for, up to the whole vocabulary (49,152
# for SmolLM2: 64 tokens made 286 MiB of answer and 3 GiB of engine memory in a minute).
_PROBS = ("n_probs", "top_logprobs", "logprobs")
# The fields check_fields reads: a request with none of them (most) is not looked at further.
_FIELDS = frozenset({"grammar", "grammar_triggers", "json_schema", "format", "response_format", "tools", *_PROBS})


@dataclass(frozen=True, slots=True)
class ParserLimits:
    grammar_bytes: int  # MAX_GRAMMAR_BYTES: a grammar or a regular expression
    grammar_depth: int  # MAX_GRAMMAR_DEPTH: nested groups of a grammar or a regular expression
    schema_bytes: int  # MAX_SCHEMA_BYTES: the JSON schemas of one request together
    schema_depth: int  # MAX_SCHEMA_DEPTH: nesting of a schema, each `$ref` followed counting as a level
    probs: int = 100  # MAX_N_PROBS: probabilities per generated token


class TooComplex(BadField):
    """An input over a parser limit: the message names the field, the limit and its setting."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(param, message, "input_too_complex")


def check_request(request: Request, body: BaseModel) -> None:
    """400 when the request's grammar, schemas or patterns are over the limits in the app's settings."""
    fields = dict(body.model_extra or {})
    for name in ("tools", "format"):  # declared fields of some dialects (read without getattr's costly miss)
        if (value := body.__dict__.get(name)) is not None:
            fields[name] = value
    check_engine_fields(request, fields)


def check_engine_fields(request: Request, fields: Mapping[str, Any]) -> None:
    """check_fields with the limits in the app's settings."""
    if _FIELDS.isdisjoint(fields):
        return
    settings = request.app.state.settings
    check_fields(
        fields,
        ParserLimits(
            settings.max_grammar_bytes,
            settings.max_grammar_depth,
            settings.max_schema_bytes,
            settings.max_schema_depth,
            settings.max_n_probs,
        ),
    )


def check_fields(fields: Mapping[str, Any], limits: ParserLimits) -> None:
    """Raise TooComplex for the first field of an engine request that is over a limit."""
    for name in _PROBS:
        value = fields.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > limits.probs:
            raise TooComplex(name, f"at most {limits.probs} probabilities per token are sent (MAX_N_PROBS)")
    if isinstance(grammar := fields.get("grammar"), str):
        _check_grammar("grammar", grammar, limits)
    for i, trigger in _items(fields.get("grammar_triggers")):
        if isinstance(trigger, dict):
            _check_trigger_type(f"grammar_triggers.{i}.type", trigger.get("type"))
        if (
            isinstance(trigger, dict)
            and trigger.get("type") in _PATTERN_TRIGGERS
            and isinstance(value := trigger.get("value"), str)
        ):
            _check_regex(f"grammar_triggers.{i}.value", value, limits)
    total = 0
    for param, schema in _schemas(fields):
        _check_schema(param, schema, limits)  # first: it bounds the nesting the encoder below recurses into
        try:
            total += len(orjson.dumps(schema))
        except orjson.JSONEncodeError as exc:  # an integer past 64 bits, or nesting past orjson's 255 levels
            raise TooComplex(param, f"cannot be measured: {exc}") from None
        if total > limits.schema_bytes:
            raise TooComplex(
                param, f"the JSON schemas of this request are over {limits.schema_bytes} bytes (MAX_SCHEMA_BYTES)"
            )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _items(value: Any) -> Iterator[tuple[object, Any]]:
    """What llama.cpp iterates in a field: a list's items, or an object's values (by key)."""
    if isinstance(value, dict):
        yield from value.items()
    else:
        yield from enumerate(_list(value))


def _schemas(fields: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every JSON schema of a request that llama.cpp turns into a grammar, with where it is."""
    if "json_schema" in fields:
        yield "json_schema", fields["json_schema"]
    if isinstance(fmt := fields.get("format"), dict):  # Ollama
        yield "format", fmt
    if isinstance(rf := fields.get("response_format"), dict):
        if "schema" in rf:
            yield "response_format.schema", rf["schema"]
        if isinstance(js := rf.get("json_schema"), dict) and "schema" in js:
            yield "response_format.json_schema.schema", js["schema"]
    for i, tool in enumerate(_list(fields.get("tools"))):
        if isinstance(tool, dict) and isinstance(fn := tool.get("function"), dict) and "parameters" in fn:
            yield f"tools.{i}.function.parameters", fn["parameters"]


def _check_trigger_type(param: str, kind: Any) -> None:
    """A trigger type given as a number must be one llama.cpp knows: it aborts the engine on any other (names
    are left to the engine, which refuses those it does not read)."""
    number = isinstance(kind, int | float) and not isinstance(kind, bool)
    if number and not (isinstance(kind, int) and kind in _TRIGGER_TYPES):
        raise BadField(param, "must be 0 (token), 1 (word), 2 (pattern) or 3 (pattern_full)")


def _check_grammar(param: str, grammar: str, limits: ParserLimits) -> None:
    if len(grammar.encode()) > limits.grammar_bytes:
        raise TooComplex(param, f"over {limits.grammar_bytes} bytes (MAX_GRAMMAR_BYTES)")
    if grammar_depth(grammar) > limits.grammar_depth:
        raise TooComplex(param, f"groups nested over {limits.grammar_depth} levels deep (MAX_GRAMMAR_DEPTH)")


def _check_regex(param: str, pattern: str, limits: ParserLimits) -> None:
    if len(pattern.encode()) > limits.grammar_bytes:
        raise TooComplex(param, f"the pattern is over {limits.grammar_bytes} bytes (MAX_GRAMMAR_BYTES)")
    if regex_depth(pattern) > limits.grammar_depth:
        raise TooComplex(
            param, f"the pattern's groups are nested over {limits.grammar_depth} levels deep (MAX_GRAMMAR_DEPTH)"
        )


def grammar_depth(grammar: str) -> int:
    """The deepest nesting of `( )` groups in a GBNF grammar (outside literals, classes and comments)."""
    return _group_depth(grammar, grammar=True)


def regex_depth(pattern: str) -> int:
    """The deepest nesting of groups in a regular expression (escapes and character classes skipped)."""
    return _group_depth(pattern, grammar=False)


def _group_depth(text: str, *, grammar: bool) -> int:
    """The deepest nesting of `( )` in `text`, skipping character classes `[...]`; in a grammar also literals
    `"..."` and `#` comments, in a regular expression backslash escapes."""
    skipped = '"[' if grammar else "["
    depth = deepest = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and not grammar:
            i += 1
        elif c in skipped:  # skip to the span's unescaped end
            end = '"' if c == '"' else "]"
            i += 1
            while i < n and text[i] != end:
                i += 2 if text[i] == "\\" else 1
        elif grammar and c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth = max(depth - 1, 0)
        i += 1
    return deepest


def _check_schema(param: str, schema: Any, limits: ParserLimits) -> None:
    """Nesting, each local `$ref` followed (a cycle is allowed: llama.cpp makes it a rule), and every `pattern`
    of a schema; each definition is walked once."""
    heights: dict[str, int] = {}  # a reference's height, once known; 0 while it is being walked (a cycle)

    def too_deep(where: str) -> TooComplex:
        return TooComplex(
            param,
            f"nested over {limits.schema_depth} levels deep, counting each $ref followed "
            f"(MAX_SCHEMA_DEPTH), at {where or '/'}",
        )

    def height(node: Any, depth: int, where: str) -> int:
        if depth > limits.schema_depth:
            raise too_deep(where)
        if isinstance(node, list):
            return max((1 + height(item, depth + 1, f"{where}/{i}") for i, item in enumerate(node)), default=0)
        if not isinstance(node, dict):
            return 0
        if isinstance(pattern := node.get("pattern"), str):
            _check_regex(f"{param}{where}/pattern", pattern, limits)
        tallest = 0
        if isinstance(ref := node.get("$ref"), str) and ref.startswith("#"):
            if ref not in heights:
                heights[ref] = 0
                heights[ref] = 1 + height(_pointer(schema, ref), depth + 1, f"{where}/$ref")
            if depth + heights[ref] > limits.schema_depth:
                raise too_deep(f"{where}/$ref")
            tallest = heights[ref]
        for key, value in node.items():
            if isinstance(value, dict | list):
                tallest = max(tallest, 1 + height(value, depth + 1, f"{where}/{key}"))
        return tallest

    height(schema, 0, "")


def _pointer(document: Any, ref: str) -> Any:
    """The node a local JSON pointer (`#/$defs/a`) names, or None."""
    node = document
    for part in ref.removeprefix("#").split("/")[1:]:
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node
