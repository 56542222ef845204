"""Schemathesis fuzzes every operation of the app's OpenAPI schema against a running api (with a null-engine
worker as the default model, so that valid requests are answered at once), on a bounded budget: no input may
get a 5xx, except the structured 503 of a kind of work no worker serves here (images) and the structured 501 of an
A1111 feature whose weights this server does not have. Hypothesis fuzzes the inputs of llama.cpp's recursive
parsers against the real engine."""

from __future__ import annotations

import os
from collections.abc import Iterator

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graycat.api.app import create_app
from graycat.config import load_settings
from tests.conftest import ADMIN, Cluster, Gateway, wait_until

pytestmark = pytest.mark.e2e
FUZZ_MODEL = "fuzz-null"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))  # per operation; CI's budget

schema = schemathesis.openapi.from_dict(create_app(load_settings(API_TOKENS="schema")).openapi())


@pytest.fixture(scope="module")
def fuzz_target(cluster: Cluster, gateway: Gateway) -> Iterator[str]:
    worker = cluster.spawn("fuzz", ["worker", "null", "--model-name", FUZZ_MODEL, "--tokens", "3"])
    wait_until(lambda: " ready: " in worker.output(), 30, "the null worker")
    api, base = cluster.api(DEFAULT_MODEL=FUZZ_MODEL, QUEUE_TIMEOUT="3", MAX_BODY_MB="1")
    yield base
    # its janitor expires every pool's jobs after 3 s: it must not outlive this module
    api.stop()
    worker.stop()


@schemathesis.check
def no_server_error(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool:
    if response.status_code == 503 and '"no_worker"' in response.text:  # in each dialect's error shape
        return True
    if response.status_code == 501 and '"not_implemented"' in response.text:  # A1111 features whose weights
        return True  # this server does not have (interrogate, face restoration, ESRGAN): said so, by design
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code}: {response.text[:500]}")
    return True


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_no_input_gets_a_server_error(case: schemathesis.Case, fuzz_target: str) -> None:
    response = case.call(base_url=fuzz_target, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    case.validate_response(response, checks=[no_server_error])


# What reaches llama.cpp's recursive parsers, fuzzed against the real engine: nesting from nothing to past
# the depths that crashed it, in every field that carries a grammar, a schema or a regular expression. No
# answer may be a 5xx, and the worker must live through all of them.
DEPTHS = st.one_of(st.integers(0, 300), st.integers(15_000, 60_000))


def _nested_json_schema(depth: int) -> str:
    return '{"type": "array", "items": ' * depth + '{"type": "string"}' + "}" * depth


def _ref_chain(length: int) -> str:
    defs = ", ".join(f'"d{i}": {{"$ref": "#/$defs/d{i + 1}"}}' for i in range(length))
    return f'{{"$defs": {{{defs}{", " if defs else ""}"d{length}": {{"type": "string"}}}}, "$ref": "#/$defs/d0"}}'


def _group(depth: int, inner: str) -> str:
    return "(" * depth + inner + ")" * depth


FIELDS = {
    "grammar": lambda d: orjson.dumps("root ::= " + _group(d, '"a"')).decode(),
    "json_schema": _nested_json_schema,
    "json_schema_refs": _ref_chain,
    "pattern": lambda d: orjson.dumps({"type": "string", "pattern": "^" + _group(d, "a") + "$"}).decode(),
    "trigger": lambda d: orjson.dumps([{"type": 2, "value": _group(d, "a")}]).decode(),
}


def _body(route: str, field: str, depth: int) -> str:
    value = FIELDS[field](min(depth, 3000) if field == "json_schema_refs" else depth)
    extra = {
        "grammar": f'"grammar": {value}',
        "json_schema": f'"json_schema": {value}',
        "json_schema_refs": f'"json_schema": {value}',
        "pattern": f'"json_schema": {value}',
        "trigger": f'"grammar": "root ::= \\"a\\"", "grammar_lazy": true, "grammar_triggers": {value}',
    }[field]
    if route == "/v1/chat/completions":
        if field in ("json_schema", "json_schema_refs", "pattern"):
            extra = f'"response_format": {{"type": "json_schema", "json_schema": {{"name": "x", "schema": {value}}}}}'
        return f'{{"messages": [{{"role": "user", "content": "hi"}}], "max_tokens": 1, {extra}}}'
    return f'{{"prompt": "hi", "n_predict": 1, {extra}}}'


@given(
    route=st.sampled_from(["/completion", "/v1/chat/completions"]), field=st.sampled_from(sorted(FIELDS)), depth=DEPTHS
)
@settings(
    max_examples=max(EXAMPLES * 2, 8),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_native_parser_inputs_never_crash_the_engine(gateway: Gateway, route: str, field: str, depth: int) -> None:
    with gateway.client() as http:
        answer = http.post(route, content=_body(route, field, depth), headers={"Content-Type": "application/json"})
    assert answer.status_code < 500, answer.text[:300]
    assert gateway.worker.alive(), gateway.worker.output()[-2000:]
