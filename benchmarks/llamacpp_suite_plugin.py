"""A pytest plugin for llama.cpp's server test suite run against the gateway (benchmarks/llamacpp_suite.py):
every request gets the gateway's token (GRAYCAT_SUITE_TOKEN). Requests made with `requests` get it when they
carry no key of their own (the suite's tests of wrong keys keep theirs); the OpenAI and Anthropic SDKs' keys
(the suite's dummies) are replaced by it."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import pytest
import requests


def _bearer(token: str) -> str:
    return f"Bearer {token}"


def pytest_configure(config: pytest.Config) -> None:
    token = os.environ.get("GRAYCAT_SUITE_TOKEN")
    if not token:
        return
    plain = requests.Session.request

    def request(self: requests.Session, method: str, url: str, **kw: Any) -> requests.Response:
        headers = {k: v for k, v in (kw.get("headers") or {}).items() if v is not None}
        if not any(k.lower() in ("authorization", "x-api-key") for k in headers):
            headers["Authorization"] = _bearer(token)
        kw["headers"] = headers
        return plain(self, method, url, **kw)

    requests.Session.request = request  # type: ignore[method-assign,assignment]
    for name in ("httpx", "httpx2"):  # the SDKs' HTTP clients (newer openai SDKs use httpx2)
        try:
            client = importlib.import_module(name).Client
        except ImportError:
            continue
        client.send = _with_token(client.send, token)


def _with_token(send: Callable[..., Any], token: str) -> Callable[..., Any]:
    def with_token(self: Any, req: Any, **kw: Any) -> Any:
        if "x-api-key" in req.headers:
            req.headers["x-api-key"] = token
        else:
            req.headers["authorization"] = _bearer(token)
        return send(self, req, **kw)
    return with_token
