"""A1111's control routes end to end on a real SD worker: refresh-* (the worker rescans its models folder) and
skip (the image being made is left out, the next ones run) and live previews in progress."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from graycat.jobs import CHUNK
from graycat.queue import keys
from tests.conftest import Cluster, RedisServer, wait_until
from tests.test_sd_e2e import SMALL, _bearer, _png
from tests.tiny_sd import build_models_folder

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sd-control")
    build_models_folder(root)
    return root


@pytest.fixture(scope="module")
def sd(cluster: Cluster, models_dir: Path) -> Iterator[str]:
    """An api and an SD worker on this module's own folder (its tests add and remove files); the api's URL."""
    _, base = cluster.api(SD_MAX_SIZE="256")
    worker = cluster.sd_worker(models_dir, SD_PREVIEW_EVERY="2")
    yield base
    worker.stop()


def test_refresh_finds_new_and_removed_checkpoints_and_loras(sd: str, models_dir: Path) -> None:
    folder = models_dir / "models"
    added = folder / "Stable-diffusion" / "extra" / "fresh.safetensors"
    lora = folder / "Lora" / "fresh-lora.safetensors"
    body = {"prompt": "a cat", "seed": 5, **SMALL}
    with _bearer(sd) as http:

        def names() -> list[str]:
            return [m["model_name"] for m in http.get("/sdapi/v1/sd-models").json()]

        def lora_names() -> list[str]:
            return [x["name"] for x in http.get("/sdapi/v1/loras").json()]

        added.parent.mkdir()
        shutil.copy(folder / "Stable-diffusion" / "tiny-single.safetensors", added)
        shutil.copy(folder / "Lora" / "tinylora.safetensors", lora)
        assert "extra_fresh" not in names()  # read at start and on refresh only
        refreshed = http.post("/sdapi/v1/refresh-checkpoints")
        assert refreshed.status_code == 200 and refreshed.json() is None
        assert names() == ["extra_fresh", "tiny", "tiny-inpaint", "tiny-single"]
        assert lora_names() == ["fresh-lora", "tinylora"]
        fresh = http.post(
            "/sdapi/v1/txt2img",
            json={
                **body,
                "prompt": "a cat <lora:fresh-lora:1>",
                "override_settings": {"sd_model_checkpoint": "extra_fresh"},
            },
        )
        assert fresh.status_code == 200, fresh.text
        assert json.loads(fresh.json()["info"])["sd_model_name"] == "extra_fresh"
        same = http.post(
            "/sdapi/v1/txt2img",
            json={
                **body,
                "prompt": "a cat <lora:tinylora:1>",
                "override_settings": {"sd_model_checkpoint": "tiny-single"},
            },
        )
        plain = http.post(
            "/sdapi/v1/txt2img", json={**body, "override_settings": {"sd_model_checkpoint": "tiny-single"}}
        )
        pixels = [_png(r.json()["images"][0]).tobytes() for r in (fresh, same, plain)]
        assert pixels[0] == pixels[1] != pixels[2]  # the copies' weights, the LoRA applied

        added.unlink()
        lora.unlink()
        assert http.post("/sdapi/v1/refresh-loras").json() is None
        assert names() == ["tiny", "tiny-inpaint", "tiny-single"] and lora_names() == ["tinylora"]
        gone = http.post(
            "/sdapi/v1/txt2img", json={**body, "override_settings": {"sd_model_checkpoint": "extra_fresh"}}
        )
        assert gone.status_code == 404 and gone.json()["param"] == "override_settings"
        assert http.post("/sdapi/v1/txt2img", json={**body, "prompt": "<lora:fresh-lora:1>"}).status_code == 400
        assert http.post("/sdapi/v1/refresh-vae").status_code == 200


def test_skip_leaves_out_the_current_image_and_goes_on(sd: str, redis_server: RedisServer) -> None:
    body = {
        "prompt": "a cat",
        "seed": 40,
        "steps": 40,
        "width": 128,
        "height": 128,
        "n_iter": 3,
        "override_settings": {"sd_model_checkpoint": "tiny"},
    }
    with _bearer(sd) as http, ThreadPoolExecutor(1) as pool:
        assert http.post("/sdapi/v1/skip").json() is None  # nothing running: nothing to skip
        pending = pool.submit(http.post, "/sdapi/v1/txt2img", json=body)

        def second_image_started() -> bool:
            state = http.get("/sdapi/v1/progress").json()["state"]
            return state["job_no"] == 1 and 1 <= state["sampling_step"] < 20

        wait_until(second_image_started, 60, "the second image of the batch")
        skipped = http.post("/sdapi/v1/skip")
        assert skipped.status_code == 200 and skipped.json() is None
        resp = pending.result(60)
        assert resp.status_code == 200, resp.text
        last_step = {}  # iteration -> its last step, from the job's progress events
        for _, fields in redis_server.client().xrange(keys.events(resp.headers["x-job-id"])):
            if fields[b"e"][:1] == CHUNK:
                event = json.loads(fields[b"e"][1:])
                last_step[event["job_no"]] = event["step"]
        assert last_step[0] == last_step[2] == 40 and last_step[1] < 30  # ended at its next step
        info = json.loads(resp.json()["info"])
        assert len(resp.json()["images"]) == 2 and info["all_seeds"] == [40, 42]
        assert [f"Seed: {s}," in t for s, t in zip([40, 42], info["infotexts"], strict=True)] == [True, True]
        third = http.post("/sdapi/v1/txt2img", json={**body, "seed": 42, "n_iter": 1})
    assert _png(resp.json()["images"][1]).tobytes() == _png(third.json()["images"][0]).tobytes()


def test_progress_shows_a_live_preview_unless_skipped(sd: str) -> None:
    body = {
        "prompt": "a cat",
        "seed": 3,
        "steps": 40,
        "width": 128,
        "height": 96,
        "override_settings": {"sd_model_checkpoint": "tiny"},
    }
    with _bearer(sd) as http, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, "/sdapi/v1/txt2img", json=body)
        seen: list[dict[str, Any]] = []

        def previewed() -> bool:
            seen.append(http.get("/sdapi/v1/progress").json())
            return seen[-1]["current_image"] is not None

        wait_until(previewed, 60, "a preview")
        assert seen[-1]["state"]["sampling_step"] >= 2 and seen[-1]["progress"] > 0
        assert _png(seen[-1]["current_image"]).size == (16, 12)  # the latent's size: 1/8 of the image's
        without = http.get("/sdapi/v1/progress", params={"skip_current_image": "true"}).json()
        assert without["current_image"] is None and without["state"]["sampling_steps"] == 40
        assert pending.result(60).status_code == 200
        assert http.get("/sdapi/v1/progress").json()["current_image"] is None  # idle
        assert http.get("/sdapi/v1/progress", params={"skip_current_image": "maybe"}).status_code == 422
