"""A1111's control routes end to end on a real SD worker: refresh-* (the worker rescans its models folder)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, wait_until
from tests.test_sd_e2e import SMALL, _bearer, _png, _ready
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
    worker = cluster.spawn("sd-worker", ["worker", "sd", "--models-dir", str(models_dir)], SD_THREADS="1")
    _, base = cluster.api(SD_MAX_SIZE="256")
    wait_until(lambda: _ready(worker), 60, "graycat worker sd")
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
        fresh = http.post("/sdapi/v1/txt2img", json={**body, "prompt": "a cat <lora:fresh-lora:1>",
                                                      "override_settings": {"sd_model_checkpoint": "extra_fresh"}})
        assert fresh.status_code == 200, fresh.text
        assert json.loads(fresh.json()["info"])["sd_model_name"] == "extra_fresh"
        same = http.post("/sdapi/v1/txt2img", json={**body, "prompt": "a cat <lora:tinylora:1>",
                                                     "override_settings": {"sd_model_checkpoint": "tiny-single"}})
        plain = http.post("/sdapi/v1/txt2img", json={**body, "override_settings": {
            "sd_model_checkpoint": "tiny-single"}})
        pixels = [_png(r.json()["images"][0]).tobytes() for r in (fresh, same, plain)]
        assert pixels[0] == pixels[1] != pixels[2]  # the copies' weights, the LoRA applied

        added.unlink()
        lora.unlink()
        assert http.post("/sdapi/v1/refresh-loras").json() is None
        assert names() == ["tiny", "tiny-inpaint", "tiny-single"] and lora_names() == ["tinylora"]
        gone = http.post("/sdapi/v1/txt2img", json={**body, "override_settings": {
            "sd_model_checkpoint": "extra_fresh"}})
        assert gone.status_code == 404 and gone.json()["param"] == "override_settings"
        assert http.post("/sdapi/v1/txt2img", json={**body, "prompt": "<lora:fresh-lora:1>"}).status_code == 400
        assert http.post("/sdapi/v1/refresh-vae").status_code == 200
