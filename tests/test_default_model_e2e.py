"""The default model is the one the workers serve, unknown models are a 404 at once, and a worker that is still
loading its engine already counts: requests for its model wait for it. On a Redis database of their own, so the
session's other workers do not count."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from graycat.queue.client import SERVED_CACHE_S
from graycat.workers.engines.llama_server import default_model_path
from tests.conftest import TOKEN, Cluster, RedisServer, wait_until

pytestmark = pytest.mark.e2e
DB = 7  # the session's Redis, a database no other test uses
FAST = 5.0  # far below QUEUE_TIMEOUT (60 s here): the answer came without waiting for a worker


@pytest.fixture(scope="module")
def own_db(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    """A cluster on database DB whose api has no DEFAULT_MODEL; (the cluster, the api's URL)."""
    cluster = Cluster(redis_server, tmp_path_factory.mktemp("default-model"))
    url = f"redis://127.0.0.1:{redis_server.port}/{DB}"
    _, base = cluster.api(REDIS_URL=url, DEFAULT_MODEL="", QUEUE_TIMEOUT="60")
    yield cluster, base
    cluster.stop_all()


def _null(cluster: Cluster, name: str, tokens: int, *args: str) -> None:
    url = f"redis://127.0.0.1:{cluster.redis.port}/{DB}"
    proc = cluster.spawn(name, ["worker", "null", "--model-name", name, "--tokens", str(tokens), *args], REDIS_URL=url)
    wait_until(lambda: " ready: " in proc.output(), 30, f"the null worker {name}")
    time.sleep(SERVED_CACHE_S)  # the api's view of the live workers is at most this old


def _ask(base: str, path: str = "/completion", **body: object) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    resp = httpx.post(
        base + path, headers={"Authorization": f"Bearer {TOKEN}"}, json={"prompt": "x", **body}, timeout=120
    )
    return resp, time.monotonic() - began


def test_the_default_is_the_model_served_then_the_declared_one_else_a_404(own_db: tuple[Cluster, str]) -> None:
    cluster, base = own_db
    nobody, took = _ask(base)  # no worker at all: said at once, not after QUEUE_TIMEOUT
    assert nobody.status_code == 503 and "no text worker is running" in nobody.text and took < FAST
    assert nobody.headers["retry-after"]

    _null(cluster, "my-model", 1)  # `graycat worker llm --model ./my-model.gguf` serves it as my-model
    for model in ({}, {"model": "default"}, {"model": ""}):
        resp, _ = _ask(base, **model)
        assert resp.status_code == 200 and resp.json()["model"] == "my-model", resp.text
    chat, _ = _ask(base, "/v1/chat/completions", messages=[{"role": "user", "content": "Hi"}])
    assert chat.status_code == 200 and chat.json()["model"] == "my-model"

    _null(cluster, "other-model", 2)
    ambiguous, took = _ask(base)
    assert ambiguous.status_code == 404 and took < FAST
    assert "my-model, other-model" in ambiguous.json()["error"]["message"]

    _null(cluster, "chosen-model", 3, "--default")  # its first model declares itself the default
    resp, _ = _ask(base)
    assert resp.status_code == 200 and resp.json()["model"] == "chosen-model"


def test_an_unknown_model_is_a_404_at_once_listing_the_served_ones(own_db: tuple[Cluster, str]) -> None:
    cluster, base = own_db
    _null(cluster, "listed-model", 1)
    for path, body in [
        ("/completion", {"model": "no-such-model"}),
        ("/v1/chat/completions", {"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]}),
        ("/api/generate", {"model": "no-such-model", "stream": False}),
    ]:
        resp, took = _ask(base, path, **body)
        assert resp.status_code == 404 and took < FAST, resp.text
        assert "no-such-model" in resp.text and "listed-model" in resp.text


def test_a_model_whose_worker_is_loading_waits_for_it(own_db: tuple[Cluster, str]) -> None:
    cluster, base = own_db
    url = f"redis://127.0.0.1:{cluster.redis.port}/{DB}"
    worker = cluster.spawn(
        "loading",
        [
            "worker",
            "llm",
            "--model",
            str(default_model_path()),
            "--model-name",
            "slow-to-load",
            "--slots",
            "1",
            "--ctx-size",
            "512",
        ],
        REDIS_URL=url,
    )

    def loading() -> bool:
        assert worker.alive(), worker.output()
        return "slow-to-load" in httpx.get(base + "/health", timeout=5).json().get("loading", [])

    wait_until(loading, 60, "the worker to announce its model as loading")
    resp, _ = _ask(base, model="slow-to-load", n_predict=2)  # sent while it loads: waits, then served
    assert resp.status_code == 200 and resp.json()["tokens_predicted"] == 2, resp.text
    assert "slow-to-load" not in httpx.get(base + "/health", timeout=5).json()["loading"]

    assert worker.stop() == 0
    time.sleep(SERVED_CACHE_S)
    gone, took = _ask(base, model="slow-to-load")  # its worker left: unknown again, at once
    assert gone.status_code == 404 and took < FAST


def test_a_worker_stopped_while_loading_leaves_at_once(own_db: tuple[Cluster, str]) -> None:
    cluster, base = own_db
    url = f"redis://127.0.0.1:{cluster.redis.port}/{DB}"
    worker = cluster.spawn(
        "stopped",
        [
            "worker",
            "llm",
            "--model",
            str(default_model_path()),
            "--model-name",
            "stopped-early",
            "--slots",
            "1",
            "--ctx-size",
            "512",
        ],
        REDIS_URL=url,
    )
    wait_until(
        lambda: "stopped-early" in httpx.get(base + "/health", timeout=5).json()["models"],
        60,
        "the worker to announce itself",
    )
    assert worker.stop() == 0  # SIGTERM, loading or not: a clean exit
    assert "stopped-early" not in httpx.get(base + "/health", timeout=5).json()["models"]  # deregistered
