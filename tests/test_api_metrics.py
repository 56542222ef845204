"""The api's own metrics: dialects of routes, and one answered request counted in every family."""

from __future__ import annotations

import pytest

from graycat.metrics import ApiMetrics, dialect_of, metrics_allowed


@pytest.mark.parametrize(
    ("route", "dialect"),
    [
        ("/v1/chat/completions", "openai"),
        ("/completion", "llamacpp"),
        ("/tokenize", "llamacpp"),
        ("/jobs/{job_id}", "jobs"),
        ("/jobs", "jobs"),
        ("/health", "gateway"),
        ("/metrics", "gateway"),
        ("unmatched", "gateway"),
        ("/sdapi/v1/txt2img", "a1111"),
        ("/v1/messages", "anthropic"),
        ("/v1/messages/count_tokens", "anthropic"),
        ("/api/chat", "ollama"),
    ],
)
def test_dialect_of_route(route: str, dialect: str) -> None:
    assert dialect_of(route) == dialect


def test_request_done_counts_and_times() -> None:
    metrics = ApiMetrics()
    for _ in range(3):
        metrics.request_done("/completion", 200, 0.004, 0.2)
    metrics.request_done("/completion", 503, 0.001, 0.001)
    get = metrics.registry.get_sample_value
    assert get("graycat_http_requests_total", {"route": "/completion", "dialect": "llamacpp", "status": "200"}) == 3
    assert get("graycat_http_requests_total", {"route": "/completion", "dialect": "llamacpp", "status": "503"}) == 1
    labels = {"route": "/completion", "dialect": "llamacpp"}
    assert get("graycat_http_response_start_seconds_bucket", {**labels, "le": "0.005"}) == 4
    assert get("graycat_http_request_duration_seconds_bucket", {**labels, "le": "0.1"}) == 1
    assert get("graycat_http_request_duration_seconds_sum", labels) == pytest.approx(0.601)
    assert get("graycat_queue_rejected_total", {"reason": "pool_full"}) == 0  # present before any refusal


def test_metrics_need_the_token_or_a_private_address() -> None:
    for private in ("127.0.0.1", "::1", "10.1.2.3", "172.18.0.5", "192.168.1.9", "fd00::1", "::ffff:10.0.0.7", None):
        assert metrics_allowed("", None, private), private
    for public in ("8.8.8.8", "2001:4860::8888", "::ffff:8.8.8.8", "example.com"):
        assert not metrics_allowed("", None, public), public
    assert metrics_allowed("Bearer s3cret", "s3cret", "8.8.8.8")
    assert not metrics_allowed("Bearer wrong", "s3cret", "127.0.0.1")
    assert not metrics_allowed("", "s3cret", "127.0.0.1")
