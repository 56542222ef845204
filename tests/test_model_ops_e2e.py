"""Models on workers' own disks, managed through the gateway: the official `ollama` client's `copy` and `delete`
act on every worker serving the model (copy: a new name served at once; delete: no more jobs taken, the running
ones finish, their llama.cpp server then stops, the jobs still waiting end with a clear error); a worker serves
the models pulled or copied into its folder again after a restart; `graycat pull --worker ID` has a running worker
pull. Each test runs on a Redis of its module: a pull goes to any live worker."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import ollama
import orjson
import psutil
import pytest
import redis

from graycat.config import DEFAULT_MODEL_NAME
from graycat.queue import keys
from graycat.store.folder import SERVED_FILE
from graycat.workers.engines.llama_server import DEFAULT_MODEL_FILE
from tests.conftest import ADMIN, TOKEN, Cluster, Proc, own_cluster, wait_until
from tests.fake_hub import SMOLLM_REPO, FakeHub, default_model_hub

pytestmark = pytest.mark.e2e
NAME = Path(DEFAULT_MODEL_FILE).stem
REF = f"hf.co/{SMOLLM_REPO}:Q4_1"
LONG = {"prompt": "Write a long story:", "n_predict": 200, "ignore_eos": True}

hub = pytest.fixture(scope="module")(default_model_hub)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with own_cluster(tmp_path_factory, "ops") as cluster:
        yield cluster


def test_copy_and_delete_act_on_each_worker_serving_the_model(own: Cluster, hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.seconds_per_mb = 0
    _, base = own.api(GRAYCAT_MODELS_DIR=str(tmp_path / "api-models"))
    admin = ollama.Client(host=base, headers={"Authorization": f"Bearer {ADMIN}"})
    user = ollama.Client(host=base, headers={"Authorization": f"Bearer {TOKEN}"})
    folders = {"a": tmp_path / "a", "b": tmp_path / "b"}
    a = own.worker("--slots", "1", GRAYCAT_MODELS_DIR=str(folders["a"]), HF_ENDPOINT=hub.url)
    a_id = _live_id(base)
    b = own.worker("--slots", "1", GRAYCAT_MODELS_DIR=str(folders["b"]), HF_ENDPOINT=hub.url)
    wait_until(lambda: len(_workers(base)) == 2, 30, "two live workers")
    [b_id] = set(_workers(base)) - {a_id}
    workers = {"a": (a, a_id), "b": (b, b_id)}
    ids = sorted([a_id, b_id])
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120) as http:
        for worker_id in ids:
            pulled = http.post("/api/pull", json={"model": REF, "worker": worker_id, "stream": False})
            assert pulled.status_code == 200, pulled.text

        with pytest.raises(ollama.ResponseError) as refused:
            user.copy(NAME, "smol")
        assert refused.value.status_code == 403
        assert admin.copy(NAME, "smol:latest").status == "success"
        for models in folders.values():
            assert (models / "smol.gguf").stat().st_ino == (models / DEFAULT_MODEL_FILE).stat().st_ino  # a hard link
        assert {w: set(m) >= {NAME, "smol"} for w, m in _workers(base).items()} == dict.fromkeys(ids, True)
        answer = user.generate(model="smol", prompt="Once", options={"num_predict": 4})
        assert answer.response
        for source, destination, status, said in (
            (NAME, "smol", 409, "a model smol is served already"),
            (NAME, "../out", 400, "is not a model name"),
            ("nothing", "x", 404, "model 'nothing' not found"),
        ):
            copied = http.post("/api/copy", json={"source": source, "destination": destination})
            assert (copied.status_code, said in copied.text) == (status, True), copied.text
        (folders["a"] / "taken.gguf").write_bytes(b"by hand")  # on one worker's disk only: it says so, the other copies
        partly = http.post("/api/copy", json={"source": NAME, "destination": "taken"})
        assert partly.status_code == 409, partly.text
        assert f"worker {a_id}: a model taken is already there" in partly.text
        assert f"worker {b_id}: copied {DEFAULT_MODEL_FILE} to taken.gguf" in partly.text

        # delete while jobs of it run: they run to their end (jobs still waiting would end at once with a clear
        # error: tests/test_queue.py), then its llama.cpp servers stop
        pids = {label: _engines(proc) for label, (proc, _) in workers.items()}
        with ThreadPoolExecutor(2) as pool:
            jobs = [pool.submit(http.post, "/completion", json={**LONG, "model": "smol"}) for _ in range(2)]
            r = own.redis.client()
            wait_until(lambda: _states(r, "smol") == ["active", "active"], 60, "2 jobs running")
            deleted = http.request("DELETE", "/api/delete", json={"model": "smol:latest"})
            results = [job.result(120) for job in jobs]
        assert deleted.status_code == 200, deleted.text
        outcome = deleted.json()
        assert outcome["status"] == "success" and outcome["waiting_jobs_ended"] == 0, outcome
        assert sorted(outcome["workers"]) == ids
        assert all(d.startswith("deleted smol.gguf") for d in outcome["workers"].values()), outcome
        assert all("its server stops after its 1 running job(s)" in d for d in outcome["workers"].values()), outcome
        assert [res.status_code for res in results] == [200, 200], [res.text for res in results]
        assert all(res.json()["tokens_predicted"] == LONG["n_predict"] for res in results)
        for label, models in folders.items():
            assert not (models / "smol.gguf").exists() and (models / DEFAULT_MODEL_FILE).is_file()
            assert "smol" not in orjson.loads((models / SERVED_FILE).read_bytes())
            wait_until(
                lambda label=label: len(_engines(workers[label][0])) == len(pids[label]) - 1, 30, "its server ends"
            )
        assert "smol:latest" not in [m.model for m in user.list().models]
        with pytest.raises(ollama.ResponseError) as gone:
            user.generate(model="smol", prompt="Once")
        assert gone.value.status_code == 404

        assert admin.delete(NAME).status == "success"
        assert not any((models / DEFAULT_MODEL_FILE).exists() for models in folders.values())
        with pytest.raises(ollama.ResponseError) as twice:
            admin.delete(NAME)
        assert twice.value.status_code == 404
        # the model each worker was started with stays: it needs it at its next start
        kept = http.request("DELETE", "/api/delete", json={"model": DEFAULT_MODEL_NAME})
        assert kept.status_code == 409 and all(f"worker {w}: the worker was started with" in kept.text for w in ids)
    for proc, _ in workers.values():
        assert proc.alive()
        proc.stop()


def test_a_worker_serves_its_pulled_models_again_after_a_restart(own: Cluster, hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.seconds_per_mb = 0
    _, base = own.api()
    models = tmp_path / "models"
    env = {"GRAYCAT_MODELS_DIR": str(models), "HF_ENDPOINT": hub.url}
    first = own.worker("--slots", "1", **env)
    worker_id = _live_id(base)

    nobody = _cli(own, "pull", "--worker", "llm-nowhere-1", REF)
    assert nobody.returncode == 1 and "worker llm-nowhere-1 is not live" in nobody.stderr, nobody.stderr
    pulled = _cli(own, "pull", "--worker", worker_id, REF)
    assert pulled.returncode == 0, pulled.stderr
    assert f"worker {worker_id} pulled {REF} and serves it as {NAME}" in pulled.stdout
    assert f"pulling {REF} on {worker_id}" in pulled.stderr and "100%" in pulled.stderr  # the progress line
    assert not (tmp_path / "data").exists()  # nothing pulled here: on the worker's disk
    admin = ollama.Client(host=base, headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.copy(NAME, "smol").status == "success" and admin.copy(NAME, "smol2").status == "success"
    served = {NAME: DEFAULT_MODEL_FILE, "smol": "smol.gguf", "smol2": "smol2.gguf"}
    assert orjson.loads((models / SERVED_FILE).read_bytes()) == served
    first.stop()

    second = own.worker("--slots", "1", **env)
    again = _live_id(base)
    assert again != worker_id and set(_workers(base)[again]) == {DEFAULT_MODEL_NAME, *served}
    answer = admin.generate(model="smol", prompt="Once", options={"num_predict": 4})
    assert answer.response
    listed = _cli(own, "models", GRAYCAT_MODELS_DIR=str(models))
    assert f"served again by the workers reading this folder when they start: {NAME}, smol, smol2" in listed.stdout

    # its slots (one per model) all taken by jobs of smol, a fifth waits in the pool: deleting the model's last
    # server ends it at once with a clear error, the others run to their end
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120) as http:
        with ThreadPoolExecutor(5) as pool:
            body = {**LONG, "model": "smol"}
            jobs = [pool.submit(http.post, "/completion", json=body) for _ in range(5)]
            r = own.redis.client()
            wait_until(lambda: _states(r, "smol") == ["active"] * 4 + ["pending"], 60, "4 jobs running, 1 waiting")
            deleted = http.request("DELETE", "/api/delete", json={"model": "smol"})
            waited = next(iter(concurrent.futures.as_completed(jobs, 10)))  # first back: the one that waited
            results = [job.result(120) for job in jobs]
    assert deleted.status_code == 200 and deleted.json()["waiting_jobs_ended"] == 1, deleted.text
    assert waited.result().status_code == 404, waited.result().text
    assert "model 'smol' was deleted (DELETE /api/delete) and no worker serves it now" in waited.result().text
    assert sorted(res.status_code for res in results) == [200] * 4 + [404]

    removed = _cli(own, "rm", "smol2", GRAYCAT_MODELS_DIR=str(models))
    assert removed.returncode == 0 and f"worker(s) {again} still serve it" in removed.stdout, removed.stdout
    assert orjson.loads((models / SERVED_FILE).read_bytes()) == {NAME: DEFAULT_MODEL_FILE}  # forgotten
    (models / DEFAULT_MODEL_FILE).unlink()  # gone by hand: the next start skips it
    second.stop()
    third = own.worker("--slots", "1", **env)
    assert set(_workers(base)[_live_id(base)]) == {DEFAULT_MODEL_NAME}
    third.stop()


def test_workers_sharing_a_folder_copy_and_delete_alike(own: Cluster, hub: FakeHub, tmp_path: Path) -> None:
    """Two workers on one models folder: the first copy makes the link, the second serves it; the first delete
    removes the file, the second finds it gone: both answer success."""
    hub.faults.seconds_per_mb = 0
    _, base = own.api()
    env = {"GRAYCAT_MODELS_DIR": str(tmp_path / "shared"), "HF_ENDPOINT": hub.url}
    procs = [own.worker("--slots", "1", **env)]
    first = _live_id(base)
    procs.append(own.worker("--slots", "1", **env))
    wait_until(lambda: len(_workers(base)) == 2, 30, "two live workers")
    [second] = set(_workers(base)) - {first}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120) as http:
        for worker_id in (first, second):
            pulled = http.post("/api/pull", json={"model": REF, "worker": worker_id, "stream": False})
            assert pulled.status_code == 200, pulled.text
        copied = http.post("/api/copy", json={"source": NAME, "destination": "smol"})
        assert copied.status_code == 200, copied.text
        assert sorted(copied.json()["workers"].values()) == [
            f"copied {DEFAULT_MODEL_FILE} to smol.gguf, served as smol",
            "serves smol.gguf as smol",
        ]
        assert all("smol" in models for models in _workers(base).values())
        deleted = http.request("DELETE", "/api/delete", json={"model": "smol"})
        assert deleted.status_code == 200 and len(deleted.json()["workers"]) == 2, deleted.text
    assert not (tmp_path / "shared" / "smol.gguf").exists()
    assert orjson.loads((tmp_path / "shared" / SERVED_FILE).read_bytes()) == {NAME: DEFAULT_MODEL_FILE}
    for proc in procs:
        proc.stop()


def _workers(base: str) -> dict[str, list[str]]:
    """The live LLM workers (not stopping) and their models, from /queue/status."""
    status = httpx.get(f"{base}/queue/status", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10).json()
    return {w["id"]: w["models"] for w in status["workers"] if w["kind"] == "llm" and not w.get("stopping")}


def _live_id(base: str) -> str:
    """The id of the one live LLM worker."""
    wait_until(lambda: len(_workers(base)) == 1, 30, "one live worker")
    [worker_id] = _workers(base)
    return worker_id


def _engines(worker: Proc) -> list[int]:
    """The pids of the worker's llama.cpp processes."""
    return [p.pid for p in psutil.Process(worker.proc.pid).children()]


def _states(r: redis.Redis, model: str) -> list[str]:
    """The states of the model's jobs that are running or waiting, sorted."""
    states = [r.hmget(key, "model", "state") for key in r.scan_iter(keys.job("*"))]
    return sorted(s.decode() for m, s in states if m == model.encode() and s in (b"active", b"pending"))


def _cli(cluster: Cluster, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graycat", *args], env=cluster.env(**env), capture_output=True, text=True, timeout=120
    )
