"""A highly available Redis: the api and a worker given a `redis+sentinel://` URL find the master through a real
Redis Sentinel, and when the master dies and Sentinel promotes its replica they go on serving on the new one."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import TOKEN, Cluster, RedisServer, default_server_binary, free_port, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "sentinel-test-secret"
SERVICE = "graycat"


@dataclass
class Sentinel:
    port: int
    master: subprocess.Popen[bytes]
    replica: subprocess.Popen[bytes]
    sentinel: subprocess.Popen[bytes]
    ports: tuple[int, int]

    @property
    def url(self) -> str:
        return f"redis+sentinel://:{PASSWORD}@127.0.0.1:{self.port}/{SERVICE}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def master_port(self) -> int:
        host_port = self.client().execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
        return int(host_port[1])

    def replica_seen(self) -> bool:
        replicas = self.client().sentinel_slaves(SERVICE)
        return any(not r["is_sdown"] and r.get("master-link-status") == "ok" for r in replicas)


def _redis(binary: str, port: int, folder: Path, *extra: str) -> subprocess.Popen[bytes]:
    folder.mkdir()
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--save",
            "",
            "--requirepass",
            PASSWORD,
            "--masterauth",
            PASSWORD,
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Sentinel]:
    binary = default_server_binary()
    ports = (free_port(), free_port())
    master = _redis(binary, ports[0], tmp_path / "master")
    replica = _redis(binary, ports[1], tmp_path / "replica", "--replicaof", "127.0.0.1", str(ports[0]))
    port = free_port()
    config = tmp_path / "sentinel.conf"  # Sentinel rewrites its configuration file: a copy of its own
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {ports[0]} 1\n"
        f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 10000\n"
    )
    watcher = subprocess.Popen(
        [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ha = Sentinel(port, master, replica, watcher, ports)
    try:
        wait_until(lambda: _answers(ha.replica_seen), 30, "the sentinel to see the replica")
        yield ha
    finally:
        for proc in (watcher, replica, master):
            proc.terminate()
            proc.wait(10)


def _answers(check: object) -> bool:
    try:
        return bool(check())  # type: ignore[operator]
    except (redis.RedisError, OSError):
        return False


def test_api_and_worker_follow_a_sentinel_failover(sentinel: Sentinel, tmp_path: Path) -> None:
    cluster = Cluster(RedisServer(sentinel.ports[0], tmp_path), tmp_path)
    try:
        cluster.spawn("worker", ["worker", "null", "--model-name", "ha-null", "--tokens", "4"], REDIS_URL=sentinel.url)
        _, base = cluster.api(REDIS_URL=sentinel.url, DEFAULT_MODEL="ha-null")
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
            wait_until(lambda: http.get("/health").json().get("workers") == 1, 30, "the worker, through Sentinel")
            assert http.post("/completion", json={"prompt": "x"}).json()["tokens_predicted"] == 4

            sentinel.master.send_signal(signal.SIGKILL)  # the master dies; Sentinel promotes the replica
            wait_until(
                lambda: _answers(lambda: sentinel.master_port() == sentinel.ports[1]),
                60,
                "Sentinel to promote the replica",
            )

            def served() -> bool:
                try:
                    return http.post("/completion", json={"prompt": "x"}, timeout=10).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(served, 60, "the api and the worker to serve through the new master", interval=0.5)
            with http.stream("POST", "/completion", json={"prompt": "x", "stream": True}) as stream:
                events = [line for line in stream.iter_lines() if line]
            assert len(events) == 5 and '"stop":true' in events[-1] and '"tokens_predicted":4' in events[-1]
            health = http.get("/health").json()
            assert health["redis"] is True and health["workers"] == 1
    finally:
        cluster.stop_all()
