"""SDXL and SD 2.x end to end: `graycat api` and `graycat worker sd` on a tiny A1111 folder of every family
(single-file checkpoints and diffusers folders, built in code)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import TOKEN, Cluster, wait_until
from tests.tiny_sd import build_family_folder

pytestmark = pytest.mark.e2e

SMALL = {"width": 64, "height": 64, "steps": 3}


@pytest.fixture(scope="module")
def sd(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An api and an SD worker on the family folder, keeping 2 checkpoints loaded; the api's base URL."""
    root = tmp_path_factory.mktemp("families")
    build_family_folder(root)
    (root / "models" / "Stable-diffusion" / "broken.safetensors").write_bytes(b"half a download")
    (root / "models" / "Lora" / "broken.safetensors").write_bytes(b"half a download")
    _, base = cluster.api(SD_MAX_SIZE="256", SD_MAX_STEPS="60")
    worker = cluster.sd_worker(root, SD_LOADED_MODELS="2")
    yield base
    worker.stop()


def _http(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"})


def _png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def _b64(image: Image.Image) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def _txt2img(http: httpx.Client, model: str, **body: Any) -> httpx.Response:
    return http.post(
        "/sdapi/v1/txt2img",
        json={"prompt": "a cat", "seed": 7, **SMALL, **body, "override_settings": {"sd_model_checkpoint": model}},
    )


def _image(resp: httpx.Response, i: int = 0) -> Image.Image:
    assert resp.status_code == 200, resp.text
    return _png(resp.json()["images"][i]).convert("RGB")


def test_sd_models_lists_each_checkpoints_family(sd: str) -> None:
    """... and leaves out a file that is no checkpoint (the worker logs why), which does not stop the worker."""
    with _http(sd) as http:
        models = http.get("/sdapi/v1/sd-models").json()
        assert "broken" in {lora["name"] for lora in http.get("/sdapi/v1/loras").json()}
    assert {m["model_name"]: m["family"] for m in models} == {
        "tiny-single": "sd1",
        "tiny2v": "sd2-v",
        "tiny2v-folder": "sd2-v",
        "tinyxl": "sdxl",
        "tinyxl-folder": "sdxl",
        "tinyxl-inpaint": "sdxl-inpaint",
        "tinyxl-refiner": "sdxl-refiner",
    }
    xl = next(m for m in models if m["model_name"] == "tinyxl")
    assert set(xl) == {"title", "model_name", "hash", "sha256", "filename", "config", "family", "loaded"}
    assert xl["title"] == f"tinyxl.safetensors [{xl['hash']}]"


def test_sdxl_single_file_txt2img_batch_img2img_inpaint_and_hires(sd: str) -> None:
    source = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    with _http(sd) as http:
        first = _txt2img(http, "tinyxl")
        assert _image(first).size == (64, 64)
        assert json.loads(first.json()["info"])["sd_model_name"] == "tinyxl"
        assert first.json()["images"] == _txt2img(http, "tinyxl").json()["images"]  # same seed, same image
        folder = _image(_txt2img(http, "tinyxl-folder"))  # the same weights as a diffusers folder
        assert np.abs(np.asarray(folder, float) - np.asarray(_image(first), float)).max() <= 2
        batch = _txt2img(http, "tinyxl", batch_size=2, n_iter=2)
        assert len(batch.json()["images"]) == 4 and json.loads(batch.json()["info"])["all_seeds"] == [7, 8, 9, 10]
        img2img = http.post(
            "/sdapi/v1/img2img",
            json={
                "prompt": "a cat",
                "init_images": [_b64(source)],
                "denoising_strength": 0.6,
                **SMALL,
                "override_settings": {"sd_model_checkpoint": "tinyxl"},
            },
        )
        assert _image(img2img).size == (64, 64)
        for model in ("tinyxl", "tinyxl-inpaint"):
            inpaint = http.post(
                "/sdapi/v1/img2img",
                json={
                    "prompt": "a cat",
                    "init_images": [_b64(source)],
                    "mask": _b64(mask),
                    "mask_blur": 0,
                    "inpaint_full_res": False,
                    "denoising_strength": 1.0,
                    **SMALL,
                    "override_settings": {"sd_model_checkpoint": model},
                },
            )
            out = _image(inpaint)
            assert out.getpixel((2, 2)) == (200, 30, 30) and out.getpixel((32, 32)) != (200, 30, 30), model
        hires = _txt2img(http, "tinyxl", enable_hr=True, hr_scale=2, hr_second_pass_steps=2, denoising_strength=0.5)
        assert _image(hires).size == (128, 128)
        assert "Hires resize: 128x128" in json.loads(hires.json()["info"])["infotexts"][0]


def test_sdxl_loras_and_vaes_and_those_of_another_family(sd: str) -> None:
    with _http(sd) as http:
        plain = _image(_txt2img(http, "tinyxl"))
        lora = _image(_txt2img(http, "tinyxl", prompt="a cat <lora:tinyxllora:1>"))  # kohya names, both encoders
        assert lora.tobytes() != plain.tobytes()
        assert _image(_txt2img(http, "tinyxl")).tobytes() == plain.tobytes()  # unloaded after the job
        for model, name in (("tinyxl", "tinylora"), ("tiny-single", "tinyxllora")):
            wrong = _txt2img(http, model, prompt=f"a cat <lora:{name}:1>")
            assert wrong.status_code == 422 and wrong.json()["code"] == "lora_family_mismatch", wrong.text
            assert name in wrong.json()["detail"] and model in wrong.json()["detail"]
        vae = http.post(
            "/sdapi/v1/txt2img",
            json={
                "prompt": "a cat",
                "seed": 7,
                **SMALL,
                "override_settings": {"sd_model_checkpoint": "tinyxl", "sd_vae": "tinyxl_vae.safetensors"},
            },
        )
        assert _image(vae).tobytes() != plain.tobytes()
        for model, name in (("tinyxl", "tinyvae.safetensors"), ("tiny-single", "tinyxl_vae.safetensors")):
            wrong = http.post(
                "/sdapi/v1/txt2img",
                json={"prompt": "x", **SMALL, "override_settings": {"sd_model_checkpoint": model, "sd_vae": name}},
            )
            assert wrong.status_code == 422 and wrong.json()["code"] == "vae_family_mismatch", wrong.text


def test_sdxl_controlnet_and_outpainting_and_a_controlnet_of_another_family(sd: str) -> None:
    control = Image.new("RGB", (64, 64), (0, 0, 0))
    control.paste((255, 255, 255), (10, 10, 30, 50))

    def unit(model: str) -> dict[str, Any]:
        return {"controlnet": {"args": [{"model": model, "image": _b64(control), "module": "none"}]}}

    with _http(sd) as http:
        plain = _image(_txt2img(http, "tinyxl"))
        guided = _txt2img(http, "tinyxl", alwayson_scripts=unit("tinyxlcontrol"))
        assert _image(guided).tobytes() != plain.tobytes()
        wrong = _txt2img(http, "tinyxl", alwayson_scripts=unit("tinycontrol"))
        assert wrong.status_code == 422 and wrong.json()["code"] == "controlnet_family_mismatch", wrong.text
        outpaint = http.post(
            "/sdapi/v1/img2img",
            json={
                "prompt": "a cat",
                "init_images": [_b64(Image.new("RGB", (48, 64), (200, 30, 30)))],
                "script_name": "Poor man's outpainting",
                "script_args": [16, 4, 1, ["left"]],
                "width": 48,
                **{k: v for k, v in SMALL.items() if k != "width"},
                "override_settings": {"sd_model_checkpoint": "tinyxl"},
            },
        )
        assert _image(outpaint).size == (64, 64)


def test_the_refiner_switch_changes_the_image(sd: str) -> None:
    with _http(sd) as http:
        body = {"steps": 6}
        plain = _image(_txt2img(http, "tinyxl", **body))
        early = _txt2img(http, "tinyxl", refiner_checkpoint="tinyxl-refiner", refiner_switch_at=0.5, **body)
        late = _txt2img(http, "tinyxl", refiner_checkpoint="tinyxl-refiner", refiner_switch_at=0.8, **body)
        assert len({plain.tobytes(), _image(early).tobytes(), _image(late).tobytes()}) == 3
        infotext = json.loads(early.json()["info"])["infotexts"][0]
        assert "Refiner: tinyxl-refiner" in infotext and "Refiner switch at: 0.5" in infotext
        never = _txt2img(http, "tinyxl", refiner_checkpoint="tinyxl-refiner", refiner_switch_at=1, **body)
        assert _image(never).tobytes() == plain.tobytes()
        source = {"init_images": [_b64(Image.new("RGB", (64, 64), (20, 90, 200)))], "denoising_strength": 0.8}
        img2img = [
            http.post(
                "/sdapi/v1/img2img",
                json={
                    "prompt": "a cat",
                    "seed": 7,
                    **SMALL,
                    **body,
                    **source,
                    **refiner,
                    "override_settings": {"sd_model_checkpoint": "tinyxl"},
                },
            )
            for refiner in ({}, {"refiner_checkpoint": "tinyxl-refiner", "refiner_switch_at": 0.5})
        ]
        assert _image(img2img[0]).tobytes() != _image(img2img[1]).tobytes()
        masked = http.post(
            "/sdapi/v1/img2img",
            json={
                **SMALL,
                **source,
                "mask": _b64(Image.new("L", (64, 64), 255)),
                "refiner_checkpoint": "tinyxl-refiner",
                "override_settings": {"sd_model_checkpoint": "tinyxl"},
            },
        )
        assert masked.status_code == 422 and masked.json()["param"] == "refiner_checkpoint"
        wrong = _txt2img(http, "tiny-single", refiner_checkpoint="tinyxl-refiner")
        assert wrong.status_code == 422 and wrong.json()["param"] == "refiner_checkpoint"
        unknown = _txt2img(http, "tinyxl", refiner_checkpoint="nope")
        assert unknown.status_code == 404
        refiner_alone = _txt2img(http, "tinyxl-refiner")
        assert refiner_alone.status_code == 422 and "refiner" in refiner_alone.json()["detail"]


def test_sd2_v_prediction_generates_and_the_checkpoint_switch_crosses_families(sd: str) -> None:
    with _http(sd) as http:
        for model in ("tiny2v", "tiny2v-folder", "tinyxl", "tiny-single", "tiny2v"):
            assert http.post("/sdapi/v1/options", json={"sd_model_checkpoint": model}).status_code == 200
            resp = http.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "seed": 3, **SMALL})
            assert _image(resp).size == (64, 64)
            assert json.loads(resp.json()["info"])["sd_model_name"] == model


def test_the_worker_keeps_its_two_last_checkpoints_loaded_and_says_which(sd: str) -> None:
    with _http(sd) as http:

        def loaded() -> set[str]:
            return {m["model_name"] for m in http.get("/sdapi/v1/sd-models").json() if m["loaded"]}

        first = _image(_txt2img(http, "tinyxl"))
        _image(_txt2img(http, "tiny-single"))
        wait_until(lambda: loaded() == {"tinyxl", "tiny-single"}, 15, "both checkpoints held (SD_LOADED_MODELS=2)")
        assert _image(_txt2img(http, "tinyxl")).tobytes() == first.tobytes()  # the held one, as it was
        _image(_txt2img(http, "tiny2v"))  # a third: tiny-single, the least recently used, goes
        wait_until(lambda: loaded() == {"tinyxl", "tiny2v"}, 15, "the least recently used checkpoint let go")
