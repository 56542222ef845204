"""A pytest plugin for Automatic1111's API tests run against the gateway (benchmarks/a1111_suite.py): the
`base_url` fixture the suite expects (pytest-base-url's) from GRAYCAT_SUITE_URL, and the gateway's token as the
Basic auth password of every `requests` call that carries no auth of its own, as A1111 clients send it."""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests


@pytest.fixture(scope="session")
def base_url() -> str:
    return os.environ["GRAYCAT_SUITE_URL"]


def pytest_configure(config: pytest.Config) -> None:
    token = os.environ.get("GRAYCAT_SUITE_TOKEN")
    if not token:
        return
    plain = requests.Session.request

    def request(self: requests.Session, method: str, url: str, **kw: Any) -> requests.Response:
        if kw.get("auth") is None:
            kw["auth"] = ("a1111-suite", token)
        return plain(self, method, url, **kw)

    requests.Session.request = request  # type: ignore[method-assign,assignment]
