"""A pytest plugin for llama.cpp's server test suite run against a running server (benchmarks/llamacpp_suite.py).

Every test talks to the server on PORT, also those whose fixtures pick a port of their own (the suite's
external-server mode only reads PORT once). Through the gateway (GRAYCAT_SUITE_TOKEN set) its token stands
for the suite's keys: a request gets it in place of the key a test gives its server (`server.api_key`) or,
when the test gives none, in place of no key or the SDKs' dummies; a wrong key, or no key where the test set
one, stays as it is, so the suite's tests of keys keep their meaning."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import pytest
import requests

_suite_key: dict[str, str | None] = {"key": None}  # the key the running test gave its server, if any


def _keyed(value: str, token: str) -> str:
    """A key header's value with the test's own key (or, with none, any key) as the gateway's token."""
    key = _suite_key["key"]
    if key is None:
        return f"Bearer {token}" if value.lower().startswith("bearer ") else token
    return value.replace(key, token)


def pytest_configure(config: pytest.Config) -> None:
    suite_server = importlib.import_module("utils").ServerProcess  # the suite's, loaded by its conftest
    port = int(os.environ["PORT"])
    suite_server.server_port = property(lambda self: port, lambda self, value: None)
    suite_server.api_key = property(
        lambda self: _suite_key["key"], lambda self, value: _suite_key.__setitem__("key", value)
    )
    token = os.environ.get("GRAYCAT_SUITE_TOKEN")
    if not token:
        return
    plain = requests.Session.request

    def request(self: requests.Session, method: str, url: str, **kw: Any) -> requests.Response:
        headers = {k: v for k, v in (kw.get("headers") or {}).items() if v is not None}
        keys = [k for k in headers if k.lower() in ("authorization", "x-api-key")]
        for name in keys:
            headers[name] = _keyed(headers[name], token)
        if not keys and _suite_key["key"] is None:
            headers["Authorization"] = f"Bearer {token}"
        kw["headers"] = headers
        return plain(self, method, url, **kw)

    requests.Session.request = request  # type: ignore[method-assign,assignment]
    for name in ("httpx", "httpx2"):  # the SDKs' HTTP clients (newer openai SDKs use httpx2)
        try:
            client = importlib.import_module(name).Client
        except ImportError:
            continue
        client.send = _with_token(client.send, token)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _suite_key["key"] = None  # each test starts with a server of no key, until its fixtures set one


def _with_token(send: Callable[..., Any], token: str) -> Callable[..., Any]:
    def with_token(self: Any, req: Any, **kw: Any) -> Any:
        for name in ("x-api-key", "authorization"):
            if name in req.headers:
                req.headers[name] = _keyed(req.headers[name], token)
        return send(self, req, **kw)

    return with_token
