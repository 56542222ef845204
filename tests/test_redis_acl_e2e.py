"""The shipped Redis ACL file (deploy/redis/users.acl) in a real redis-server: the API, an LLM worker and an
image worker run jobs as their own users, and the worker's user cannot read tokens or sessions, nor run dangerous
commands."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import ADMIN, TOKEN, Cluster, default_server_binary, free_port, wait_until
from tests.tiny_sd import build_pipeline

pytestmark = pytest.mark.e2e
ACL = Path(__file__).resolve().parent.parent / "deploy" / "redis" / "users.acl"
PASSWORDS = {"CHANGE-ME-api-password": "api-secret-1", "CHANGE-ME-worker-password": "worker-secret-2"}


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("acl")
    text = ACL.read_text()
    for placeholder, password in PASSWORDS.items():
        assert placeholder in text
        text = text.replace(placeholder, password)
    (folder / "users.acl").write_text(text)
    port = free_port()
    binary = default_server_binary()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--aclfile",
            str(folder / "users.acl"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = redis.Redis(port=port, username="graycat-api", password="api-secret-1")
    wait_until(lambda: _pings(api), 10, "redis-server with the ACL file")
    yield port
    proc.terminate()
    proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_api_and_worker_run_jobs_as_their_users(acl_redis: int, tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    cluster = Cluster(redis_server, tmp_path)
    api_url = f"redis://graycat-api:api-secret-1@127.0.0.1:{acl_redis}/0"
    worker_url = f"redis://graycat-worker:worker-secret-2@127.0.0.1:{acl_redis}/0"
    try:
        worker = cluster.spawn(
            "acl-worker", ["worker", "null", "--model-name", "acl-null", "--tokens", "3"], REDIS_URL=worker_url
        )
        wait_until(lambda: " ready: " in worker.output(), 30, "the worker")
        _, base = cluster.api(REDIS_URL=api_url)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            plain = http.post("/completion", json={"prompt": "x", "model": "acl-null"})
            streamed = http.post("/completion", json={"prompt": "x", "model": "acl-null", "stream": True})
            chat = http.post(
                "/v1/chat/completions",
                headers={"X-Session-ID": "acl"},
                json={"model": "acl-null", "messages": [{"role": "user", "content": "x"}]},
            )
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as admin:
            limited = admin.post("/admin/tokens", json={"name": "acl", "daily_tokens": 100, "concurrency": 2})
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {limited.json()['token']}"}, timeout=30
        ) as http:  # the worker releases its reservation and its place in flight
            job = http.post("/jobs", json={"route": "/completion", "body": {"prompt": "x", "model": "acl-null"}})
            wait_until(lambda: http.get(f"/jobs/{job.json()['id']}").json()["state"] == "completed", 10, "the job")
            quota = http.post("/completion", json={"prompt": "x", "model": "acl-null"})
        assert quota.status_code == 200
        assert plain.status_code == 200 and plain.json()["content"] == "xxx"
        assert streamed.status_code == 200 and streamed.text.count("data: ") == 4
        assert chat.status_code == 200  # a session turn: the api keeps it, the worker runs it in its lane
        assert "NOPERM" not in worker.output()
    finally:
        cluster.stop_all()


def test_an_image_worker_runs_as_the_worker_user(acl_redis: int, tmp_path: Path, redis_server) -> None:  # type: ignore[no-untyped-def]
    """Announced while it loads (a request waits for it), then skip and refresh-checkpoints reach it."""
    folder = tmp_path / "sd" / "models" / "Stable-diffusion"
    build_pipeline(folder / "tiny")
    cluster = Cluster(redis_server, tmp_path)
    try:
        _, base = cluster.api(
            REDIS_URL=f"redis://graycat-api:api-secret-1@127.0.0.1:{acl_redis}/0", SD_REFRESH_TIMEOUT="10"
        )
        worker = cluster.spawn(
            "acl-sd-worker",
            ["worker", "sd", "--models-dir", str(tmp_path / "sd")],
            REDIS_URL=f"redis://graycat-worker:worker-secret-2@127.0.0.1:{acl_redis}/0",
            SD_THREADS="1",
        )
        with (
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as http,
            ThreadPoolExecutor(1) as pool,
        ):

            def loading() -> bool:
                assert worker.alive(), worker.output()
                return http.get("/health").json().get("loading") == ["tiny"]

            wait_until(loading, 60, "the image worker to announce its checkpoint while it loads")
            pending = pool.submit(
                http.post,
                "/sdapi/v1/txt2img",
                json={  # waits for the worker, no 503
                    "prompt": "a cat",
                    "seed": 1,
                    "steps": 40,
                    "width": 128,
                    "height": 128,
                    "n_iter": 2,
                    "override_settings": {"sd_model_checkpoint": "tiny"},
                },
            )
            wait_until(
                lambda: http.get("/sdapi/v1/progress").json()["state"]["sampling_step"] >= 1, 120, "the first image"
            )
            assert http.post("/sdapi/v1/skip").status_code == 200  # the worker hears gc:skip
            resp = pending.result(60)
            assert resp.status_code == 200, resp.text
            assert len(resp.json()["images"]) == 1  # the first image was skipped, the second made

            shutil.copytree(folder / "tiny", folder / "tiny-copy")
            refreshed = http.post("/sdapi/v1/refresh-checkpoints")  # the worker hears gc:refresh:sd
            assert refreshed.status_code == 200, refreshed.text
            assert [m["model_name"] for m in http.get("/sdapi/v1/sd-models").json()] == ["tiny", "tiny-copy"]
        assert "NOPERM" not in worker.output() and "permission" not in worker.output().lower()
    finally:
        cluster.stop_all()


@pytest.mark.parametrize(
    "command",
    [
        ("HGETALL", "gc:token:abc"),
        ("SMEMBERS", "gc:tokens"),
        ("LRANGE", "gc:session:owner:acl", "0", "-1"),
        ("KEYS", "*"),
        ("FLUSHALL",),
        ("CONFIG", "GET", "requirepass"),
        ("ACL", "LIST"),
    ],
)
def test_the_worker_user_cannot_read_secrets_or_wreck_the_server(acl_redis: int, command: tuple[str, ...]) -> None:
    worker = redis.Redis(port=acl_redis, username="graycat-worker", password="worker-secret-2")
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.execute_command(*command)


def test_no_one_connects_as_default(acl_redis: int) -> None:
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
        redis.Redis(port=acl_redis).ping()
