"""`graycat up`: from nothing to a server that answers, and back to nothing on SIGTERM."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import RedisServer, free_port, wait_until

pytestmark = pytest.mark.e2e


def no_redis_path(tmp_path: Path) -> str:
    """A PATH as on a fresh machine: python and the basic tools, no redis-server or valkey-server."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python3").symlink_to(sys.executable)
    for tool in ("sh", "env", "cat", "ls"):
        if found := shutil.which(tool):
            (folder / tool).symlink_to(found)
    assert shutil.which("redis-server", path=str(folder)) is None
    return str(folder)


def _up(
    tmp_path: Path, *args: str, port: int | None = None, **env: str
) -> tuple[subprocess.Popen[str], str, list[str]]:
    clean = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "API_TOKENS", "GRAYCAT_MODEL"}}
    clean.update(GRAYCAT_DATA_DIR=str(tmp_path / "data"), LLM_SLOTS="2", LLM_CTX_PER_SLOT="512", LLM_THREADS="1", **env)
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "graycat", "up", "--port", str(port), *args],
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "try: curl" in line:  # the ready message's last line
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(120) or proc.poll() is not None:
        proc.kill()
        raise AssertionError("graycat up never became ready:\n" + "".join(lines))
    return proc, f"http://127.0.0.1:{port}", lines


def graycat(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    """A short `graycat` command (not `up`), with REDIS_URL unset unless given."""
    clean = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "API_TOKENS"}}
    return subprocess.run(
        [sys.executable, "-m", "graycat", *args], env={**clean, **env}, capture_output=True, text=True, timeout=timeout
    )


def test_up_on_a_machine_without_redis_serves_and_stops_cleanly(tmp_path: Path) -> None:
    """The fresh-machine path: no redis-server anywhere on PATH, so `graycat up` starts the embedded Valkey."""
    data = tmp_path / "data"
    proc, base, lines = _up(tmp_path, PATH=no_redis_path(tmp_path))
    try:
        ready = "".join(lines[next(i for i, ln in enumerate(lines) if "ready at" in ln) :])
        assert base in ready and f"curl {base}/v1/chat/completions" in ready  # the next step to take
        token_file = Path(re.search(r"cat (\S+)\)", ready).group(1))  # type: ignore[union-attr]
        token = token_file.read_text().strip()
        assert token and (token_file.stat().st_mode & 0o777) == 0o600
        resp = httpx.post(
            base + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 4},
            timeout=60,
        )
        assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]
        aof = {p.name for p in (data / "redis").iterdir()} & {"appendonlydir", "appendonly.aof"}
        assert aof  # AOF persistence in the data folder
        assert "Valkey" in (data / "redis" / "redis.log").read_text()
        health = httpx.get(base + "/health", timeout=5).json()
        assert len(health["instance"]) >= 16  # how `up` knows the api it reached is its own

        # its Redis URL, for `graycat token ...` run with the same data folder and no REDIS_URL
        assert ((data / "redis-url").stat().st_mode & 0o777) == 0o600
        created = graycat("token", "create", "--name", "first-run", GRAYCAT_DATA_DIR=str(data))
        assert created.returncode == 0, created.stderr
        assert (
            httpx.get(
                base + "/v1/models", headers={"Authorization": f"Bearer {created.stdout.strip()}"}, timeout=10
            ).status_code
            == 200
        )
        listed = graycat("token", "list", GRAYCAT_DATA_DIR=str(data))
        assert listed.returncode == 0 and "first-run" in listed.stdout

        # a second `graycat up` on the same folder, or on the same port, stops at once and says why
        second = subprocess.run(
            [sys.executable, "-m", "graycat", "up", "--port", str(free_port())],
            env={**os.environ, "GRAYCAT_DATA_DIR": str(data)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 1 and "another `graycat up`" in second.stderr and str(data) in second.stderr
        port = base.rsplit(":", 1)[1]
        third = subprocess.run(
            [sys.executable, "-m", "graycat", "up", "--port", port],
            env={**os.environ, "GRAYCAT_DATA_DIR": str(tmp_path / "other")},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert third.returncode == 1 and f"port {port}" in third.stderr and "in use" in third.stderr
        assert not (tmp_path / "other" / "redis").exists()  # nothing was started
    finally:
        parts = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    # Redis, the api, the worker and its engine process are gone
    assert len(parts) == 4 and not any(_alive(pid) for pid in parts)
    assert not (data / "redis-url").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(base + "/health", timeout=1)


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        out = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout
        children = {int(p) for p in out.split()}
        found |= children
        todo.extend(children)
    return found


def test_the_parts_of_a_killed_up_exit_with_it(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer's signal) gives `graycat up` no chance to stop its parts: they stop themselves.
    Its REDIS_URL does not answer: one warning line, then a private Redis."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    proc, _, lines = _up(tmp_path, REDIS_URL=dead)
    warnings = [ln for ln in lines if "REDIS_URL" in ln]
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "private Redis" in warnings[0]
    parts = _descendants(proc.pid)
    names = {Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode() for pid in parts}
    assert any("valkey-server" in n for n in names) and any(" api" in n for n in names)
    assert any("worker llm" in n for n in names) and any("llama_process" in n for n in names)
    proc.kill()
    proc.wait(10)

    wait_until(lambda: not any(_alive(pid) for pid in parts), 20, "the parts of the killed `graycat up` to exit")


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_up_stops_at_once_when_redis_url_is_too_old(tmp_path: Path, old_redis: RedisServer) -> None:
    started = time.monotonic()
    result = graycat("up", "--port", str(free_port()), REDIS_URL=old_redis.url, GRAYCAT_DATA_DIR=str(tmp_path / "data"))
    assert result.returncode == 1 and time.monotonic() - started < 20
    assert "redis 6.2.14" in result.stderr and "Redis 7.0" in result.stderr and "Traceback" not in result.stderr


def test_token_commands_say_in_one_line_that_redis_is_unreachable(tmp_path: Path) -> None:
    (tmp_path / "redis-url").write_text("redis://127.0.0.1:1/0\n")  # left by a `graycat up` that was killed
    result = graycat(
        "token", "list", GRAYCAT_DATA_DIR=str(tmp_path), REDIS_URL=f"redis://:pw@127.0.0.1:{free_port()}/0"
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert "Redis unreachable" in line and ":***@" in line and "pw" not in line
    stale = graycat("token", "list", GRAYCAT_DATA_DIR=str(tmp_path))
    assert "127.0.0.1:1/" not in stale.stderr  # no `graycat up` holds the folder: its file is stale


def test_up_uses_redis_url_when_reachable(tmp_path: Path, redis_server: RedisServer) -> None:
    proc, base, _ = _up(tmp_path, REDIS_URL=redis_server.url, API_TOKENS="mine")
    try:
        assert not (tmp_path / "data" / "redis").exists()
        health = httpx.get(base + "/health", timeout=5).json()
        assert health["status"] == "ok"
        assert (
            httpx.post(
                base + "/completion",
                headers={"Authorization": "Bearer mine"},
                json={"prompt": "Hi", "n_predict": 2},
                timeout=60,
            ).status_code
            == 200
        )
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0


@pytest.mark.parametrize("where", ["models/Stable-diffusion", "models", "empty"])
def test_a_models_folder_without_checkpoints_is_named_in_a_warning(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from graycat.config import load_settings
    from graycat.standalone import _images_wanted

    (tmp_path / "models" / "Stable-diffusion").mkdir(parents=True)
    (tmp_path / "models" / "Stable-diffusion" / "model.safetensors").write_bytes(b"")
    given = tmp_path / where
    given.mkdir(exist_ok=True)
    assert not _images_wanted(load_settings(SD_MODELS_DIR=str(given), _env_file=None))
    warning = capsys.readouterr().err
    assert "warning: no image worker" in warning and str(given / "models" / "Stable-diffusion") in warning
    if where != "empty":  # pointing at the checkpoints folder (or models/) itself: the fix is named
        assert f"set SD_MODELS_DIR={tmp_path}" in warning
