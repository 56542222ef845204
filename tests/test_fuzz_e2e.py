"""Schemathesis fuzzes every operation of the app's OpenAPI schema against a running api (with a null-engine
worker as the default model, so that valid requests are answered at once), on a bounded budget: no input may
get a 5xx, except the structured 503 of a kind of work no worker serves here (images)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

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
def no_server_error(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                    case: schemathesis.Case) -> bool:
    if response.status_code == 503 and '"no_worker"' in response.text:  # in each dialect's error shape
        return True
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code}: {response.text[:500]}")
    return True


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_no_input_gets_a_server_error(case: schemathesis.Case, fuzz_target: str) -> None:
    response = case.call(base_url=fuzz_target, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    case.validate_response(response, checks=[no_server_error])
