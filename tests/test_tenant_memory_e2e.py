"""What one token can make Redis keep is bounded: per session message, per session, per token, per stored result."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import MODEL, TOKEN, Cluster, Gateway, wait_until

pytestmark = pytest.mark.e2e
NAME_KB = 200  # a message's `name` is kept with the session but is not part of the prompt


def _turn(http: httpx.Client, session: str, name_kb: int = NAME_KB) -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        headers={"X-Session-ID": session},
        json={
            "model": MODEL,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "Hi", "name": "n" * (name_kb * 1024)}],
        },
    )


def test_a_session_message_over_the_cap_is_refused(gateway: Gateway) -> None:
    with gateway.client() as http:
        resp = _turn(http, "huge-name", name_kb=300)  # SESSION_MAX_MESSAGE_KB: 256
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "message_too_large", resp.text
        assert http.get("/sessions/huge-name").status_code == 404


def test_sessions_are_kept_within_their_byte_caps(cluster: Cluster, gateway: Gateway) -> None:
    _, base = cluster.api(SESSION_MAX_KB="300", SESSIONS_MAX_MB_PER_TOKEN="1")
    redis = cluster.redis.client()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
        for _ in range(3):  # one session: only what fits in 300 KiB stays, the latest turn last
            assert _turn(http, "capped").status_code == 200
        kept = http.get("/sessions/capped").json()["messages"]
        assert 0 < len(kept) < 6 and kept[-1]["role"] == "assistant"
        for i in range(8):  # 8 sessions of ~200 KiB: the token keeps 1 MiB, its least recently used go
            assert _turn(http, f"many-{i}").status_code == 200
        # (a turn is kept just after its answer)
        wait_until(lambda: http.get("/sessions/many-7").status_code == 200, 10, "the last turn kept")
        assert http.get("/sessions/many-0").status_code == 404
    owner = next(k.decode().split(":")[2] for k in redis.scan_iter("gc:session:*:many-7"))
    stored = sum(redis.memory_usage(k) or 0 for k in redis.scan_iter(f"gc:session:{owner}:*"))
    assert stored < 1.5 * 2**20, stored


def test_a_result_over_the_cap_fails_the_job_and_is_not_stored(gateway: Gateway) -> None:
    content = "a b c d " * 250_000  # 2 MB of text: its pieces would be a ~20 MB answer
    with gateway.client() as http:
        resp = http.post("/tokenize", json={"content": content, "with_pieces": True}, timeout=300)
    assert resp.status_code == 413 and "RESULT_MAX_MB" in resp.json()["error"]["message"], resp.text[:300]
