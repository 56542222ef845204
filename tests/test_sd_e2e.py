"""Image generation end to end: `graycat api` and `graycat worker sd` processes on a tiny A1111 models folder."""

from __future__ import annotations

import base64
import io
import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest
from PIL import Image

from graycat.queue import keys
from tests.conftest import ADMIN, MODEL, TOKEN, Cluster, Gateway, RedisServer, wait_until
from tests.tiny_sd import build_models_folder

pytestmark = pytest.mark.e2e

SMALL = {"width": 64, "height": 64, "steps": 3}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sd")
    build_models_folder(root)
    return root


@pytest.fixture(scope="module")
def sd(cluster: Cluster, models_dir: Path) -> Iterator[str]:
    """An api and an SD worker; the api's base URL."""
    _, base = cluster.api(SD_MAX_SIZE="256", SD_MAX_STEPS="60")
    worker = cluster.sd_worker(models_dir)
    yield base
    worker.stop()


def _client(base: str, **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=base, timeout=60, **kw)


def _bearer(base: str) -> httpx.Client:
    return _client(base, headers={"Authorization": f"Bearer {TOKEN}"})


def _png(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == "PNG"
    return image


def _b64(image: Image.Image) -> str:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_unity_client_sequence_with_progress_polling(sd: str) -> None:
    """sd-models, options with model_name, then txt2img polled by progress, with Basic auth as A1111 clients."""
    with _client(sd + "/", auth=("unity", TOKEN)) as http:  # a base URL ending in '/' (paths get '//')
        models = http.get("/sdapi/v1/sd-models")
        assert models.status_code == 200 and models.text.startswith("[")
        names = [m["model_name"] for m in models.json()]
        assert names == ["tiny", "tiny-inpaint", "tiny-single"]
        single = next(m for m in models.json() if m["model_name"] == "tiny-single")
        assert single["title"] == f"tiny-single.safetensors [{single['hash']}]" and len(single["sha256"]) == 64
        assert http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "tiny-single"}).json() is None
        assert http.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == single["title"]
        seen: list[dict[str, Any]] = []
        done = threading.Event()

        def poll() -> None:
            with _client(sd, auth=("unity", TOKEN)) as poller:
                while not done.is_set():
                    seen.append(poller.get("/sdapi/v1/progress").json())
                    time.sleep(0.05)

        poller = threading.Thread(target=poll)
        poller.start()
        body = {
            "prompt": "a cat",
            "negative_prompt": "dog",
            "seed": -1,
            "sampler_name": "Euler a",
            "steps": 40,
            "width": 128,
            "height": 128,
            "cfg_scale": 7,
            "restore_faces": None,
            "subseed_strength": 0,
            "styles": [""],
            "override_settings": None,
            "batch_size": 1,
            "n_iter": 1,
        }
        resp = http.post("/sdapi/v1/txt2img", json=body)
        done.set()
        poller.join()
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    info = json.loads(answer["info"])
    assert isinstance(info["seed"], int) and info["seed"] >= 0 and info["all_seeds"] == [info["seed"]]
    assert info["restore_faces"] is False and isinstance(info["denoising_strength"], int | float)
    assert info["sd_model_name"] == "tiny-single"
    assert answer["parameters"]["restore_faces"] is False and answer["parameters"]["steps"] == 40
    assert answer["parameters"]["sampler_name"] == "Euler a"
    image = _png(answer["images"][0])
    assert image.size == (128, 128)
    text = image.text["parameters"]
    assert text.startswith("a cat\nNegative prompt: dog\nSteps: 40, Sampler: Euler a")
    assert f"Seed: {info['seed']}" in text and "Model: tiny-single" in text
    steps = [p["state"]["sampling_step"] for p in seen if p["state"]["sampling_steps"] == 40]
    assert len(set(steps)) >= 3 and steps == sorted(steps), seen  # several distinct steps, in order
    assert all(0 <= p["progress"] <= 1 for p in seen)


def test_same_seed_same_image_and_batches_get_consecutive_seeds(sd: str) -> None:
    with _bearer(sd) as http:
        body = {
            "prompt": "a red dog",
            "seed": 1234,
            "sampler_name": "DPM++ 2M Karras",
            **SMALL,
            "override_settings": {"sd_model_checkpoint": "tiny"},
        }
        first, second = (http.post("/sdapi/v1/txt2img", json=body).json() for _ in range(2))
        assert first["images"] == second["images"]
        other = http.post("/sdapi/v1/txt2img", json={**body, "seed": 1235}).json()
        assert other["images"] != first["images"]
        batch = http.post("/sdapi/v1/txt2img", json={**body, "batch_size": 2, "n_iter": 2}).json()
    info = json.loads(batch["info"])
    assert len(batch["images"]) == 4 and info["all_seeds"] == [1234, 1235, 1236, 1237]
    assert len(set(batch["images"])) == 4 and "Schedule type: Karras" in info["infotexts"][0]
    assert [f"Seed: {s}," in t for s, t in zip(info["all_seeds"], info["infotexts"], strict=True)] == [True] * 4


def test_img2img_and_inpainting_on_4_and_9_channel_models(sd: str) -> None:
    source = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    with _bearer(sd) as http:
        plain = http.post(
            "/sdapi/v1/img2img",
            json={
                "prompt": "a cat",
                "init_images": [_b64(source)],
                "denoising_strength": 0.6,
                "seed": 3,
                **SMALL,
                "override_settings": {"sd_model_checkpoint": "tiny"},
            },
        )
        assert plain.status_code == 200, plain.text
        assert _png(plain.json()["images"][0]).size == (64, 64)
        assert plain.json()["parameters"]["init_images"] is None
        for model in ("tiny", "tiny-inpaint"):
            resp = http.post(
                "/sdapi/v1/img2img",
                json={
                    "prompt": "a cat",
                    "init_images": ["data:image/png;base64," + _b64(source)],
                    "mask": _b64(mask),
                    "mask_blur": 0,
                    "inpainting_fill": 1,
                    "inpaint_full_res": False,
                    "seed": 3,
                    **SMALL,
                    "denoising_strength": 1.0,
                    "override_settings": {"sd_model_checkpoint": model},
                },
            )
            assert resp.status_code == 200, (model, resp.text)
            out = _png(resp.json()["images"][0]).convert("RGB")
            assert out.getpixel((2, 2)) == (200, 30, 30)  # outside the mask: the original, exactly
            assert out.getpixel((32, 32)) != (200, 30, 30)  # inside: generated
        only_masked = http.post(
            "/sdapi/v1/img2img",
            json={
                "prompt": "a cat",
                "init_images": [_b64(source)],
                "mask": _b64(mask),
                "inpaint_full_res": True,
                "inpaint_full_res_padding": 4,
                "inpainting_mask_invert": 1,
                "mask_blur": 0,
                **SMALL,
                "override_settings": {"sd_model_checkpoint": "tiny-inpaint"},
            },
        )
        assert only_masked.status_code == 200, only_masked.text
        inverted = _png(only_masked.json()["images"][0]).convert("RGB")
        assert inverted.getpixel((32, 32)) == (200, 30, 30)  # the mask was inverted: the centre is kept


def test_img2img_under_one_denoising_step_runs_one_as_a1111_does(sd: str) -> None:
    """steps x denoising_strength under 1 (3 steps at 0.3, or strength 0) runs one step, as A1111 does, on
    img2img, inpainting and the hires fix's second pass: diffusers refuses to run none (it was a 502)."""
    source = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    base = {"prompt": "a cat", "seed": 3, "width": 64, "height": 64, "steps": 3, "sampler_name": "Euler"}
    tiny = {"override_settings": {"sd_model_checkpoint": "tiny"}}
    with _bearer(sd) as http:
        for strength in (0.3, 0.0):
            img2img = {**base, **tiny, "init_images": [_b64(source)], "denoising_strength": strength}
            for body in (img2img, {**img2img, "mask": _b64(mask)}):
                answer = http.post("/sdapi/v1/img2img", json=body)
                assert answer.status_code == 200, answer.text
                assert _png(answer.json()["images"][0]).size == (64, 64)
        hires = {**base, **tiny, "enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 3}
        answer = http.post("/sdapi/v1/txt2img", json={**hires, "denoising_strength": 0.3})
        assert answer.status_code == 200, answer.text
        assert _png(answer.json()["images"][0]).size == (96, 96)


def test_openai_image_edits_repaint_the_transparent_area(sd: str) -> None:
    def png(image: Image.Image) -> bytes:
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()

    picture = Image.new("RGBA", (64, 64), (200, 30, 30, 255))
    picture.paste((0, 0, 0, 0), (16, 16, 48, 48))  # the hole to repaint
    sdk = openai.OpenAI(base_url=sd + "/v1", api_key=TOKEN, max_retries=0)
    result = sdk.images.edit(
        image=("hole.png", png(picture), "image/png"), prompt="a cat", n=2, model="tiny", response_format="b64_json"
    )
    assert len(result.data) == 2
    out = _png(result.data[0].b64_json or "").convert("RGB")
    assert out.size == (64, 64) and out.getpixel((2, 2)) == (200, 30, 30) and out.getpixel((32, 32)) != (0, 0, 0)
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))
    with _bearer(sd) as http:
        solid = png(Image.new("RGB", (64, 64), (200, 30, 30)))
        masked = http.post(
            "/v1/images/edits",
            files={"image": ("a.png", solid), "mask": ("m.png", png(mask))},
            data={"prompt": "a cat", "model": "tiny-inpaint", "response_format": "url"},
        )
        assert masked.status_code == 200, masked.text
        got = Image.open(io.BytesIO(httpx.get(masked.json()["data"][0]["url"]).content)).convert("RGB")
        assert got.getpixel((60, 32)) == (200, 30, 30) and got.getpixel((4, 32)) != (200, 30, 30)
        opaque = http.post("/v1/images/edits", files={"image": ("a.png", solid)}, data={"prompt": "x"})
        assert opaque.status_code == 400 and "transparent" in opaque.json()["error"]["message"]
        small = png(Image.new("RGBA", (32, 32)))
        mismatch = http.post(
            "/v1/images/edits", files={"image": ("a.png", solid), "mask": ("m.png", small)}, data={"prompt": "x"}
        )
        assert mismatch.status_code == 400 and mismatch.json()["error"]["param"] == "mask"
        not_image = http.post("/v1/images/edits", files={"image": ("a.png", b"text")}, data={"prompt": "x"})
        assert not_image.status_code == 400 and not_image.json()["error"]["param"] == "image"


def test_lora_from_the_prompt_is_applied_for_its_job_only(sd: str) -> None:
    body = {"prompt": "a cat", "seed": 9, **SMALL, "override_settings": {"sd_model_checkpoint": "tiny-single"}}
    with _bearer(sd) as http:
        assert [x["name"] for x in http.get("/sdapi/v1/loras").json()] == ["tinylora"]
        base = http.post("/sdapi/v1/txt2img", json=body).json()["images"]
        styled = http.post("/sdapi/v1/txt2img", json={**body, "prompt": "a cat <lora:tinylora:1>"}).json()
        assert styled["images"] != base and "<lora:tinylora:1>" in json.loads(styled["info"])["infotexts"][0]
        assert http.post("/sdapi/v1/txt2img", json=body).json()["images"] == base
        unknown = http.post("/sdapi/v1/txt2img", json={**body, "prompt": "<lora:nope:1> a cat"})
        assert unknown.status_code == 400 and "LoRA 'nope' not found" in unknown.json()["detail"]


def test_outpainting_grows_the_canvas_and_keeps_the_image(sd: str) -> None:
    source = Image.new("RGB", (64, 64), (30, 160, 40))
    body = {
        "prompt": "a field",
        "init_images": [_b64(source)],
        "script_name": "Poor man's outpainting",
        "script_args": [16, 2, 1, ["left", "down"]],
        "denoising_strength": 1.0,
        "seed": 4,
        **SMALL,
    }
    with _bearer(sd) as http:
        for model in ("tiny", "tiny-inpaint"):
            resp = http.post("/sdapi/v1/img2img", json={**body, "override_settings": {"sd_model_checkpoint": model}})
            assert resp.status_code == 200, resp.text
            out = _png(resp.json()["images"][0]).convert("RGB")
            assert out.size == (80, 80) and json.loads(resp.json()["info"])["width"] == 80
            assert out.getpixel((60, 20)) == (30, 160, 40)  # the original, away from the seam
            assert out.getpixel((2, 40)) != (30, 160, 40) and out.getpixel((40, 78)) != (30, 160, 40)
        bad = http.post("/sdapi/v1/img2img", json={**body, "script_args": [12]})
        assert bad.status_code == 422 and bad.json()["param"] == "script_args"


def test_hires_fix_upscales_then_denoises_again(sd: str) -> None:
    body = {"prompt": "a cat", "seed": 5, **SMALL, "override_settings": {"sd_model_checkpoint": "tiny"}}
    with _bearer(sd) as http:
        first = _png(http.post("/sdapi/v1/txt2img", json=body).json()["images"][0]).convert("RGB")
        upscaled = http.post(
            "/sdapi/v1/txt2img", json={**body, "enable_hr": True, "hr_upscaler": "Lanczos", "denoising_strength": 0}
        )
        assert upscaled.status_code == 200, upscaled.text
        image = _png(upscaled.json()["images"][0]).convert("RGB")
        assert image.size == (128, 128)  # hr_scale 2, and no second pass at strength 0: the first pass, resized
        assert image.tobytes() == first.resize((128, 128), Image.Resampling.LANCZOS).tobytes()
        hires = {**body, "enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 2, "denoising_strength": 0.6}
        answers = [http.post("/sdapi/v1/txt2img", json=hires).json() for _ in range(2)]
        inpainting = http.post(
            "/sdapi/v1/txt2img", json={**hires, "override_settings": {"sd_model_checkpoint": "tiny-inpaint"}}
        )  # a 9-channel model: its second pass inpaints everything
        assert inpainting.status_code == 200 and _png(inpainting.json()["images"][0]).size == (96, 96)
        assert http.get("/sdapi/v1/upscalers").json()[0]["name"] == "None"
        assert {"name": "Latent"} in http.get("/sdapi/v1/latent-upscale-modes").json()
    made = _png(answers[0]["images"][0]).convert("RGB")
    assert made.size == (96, 96) and answers[0]["images"] == answers[1]["images"]  # the same seed, the same image
    assert made.tobytes() != first.resize((96, 96), Image.Resampling.BILINEAR).tobytes()  # denoised again
    text = json.loads(answers[0]["info"])["infotexts"][0]
    assert "Hires resize: 96x96" in text and "Hires upscaler: Latent" in text and "Hires steps: 2" in text
    assert "Denoising strength: 0.6" in text and "Size: 64x64" in text


def test_controlnet_units_guide_txt2img_and_img2img(sd: str) -> None:
    control = Image.new("RGB", (64, 64), (255, 255, 255))
    control.paste((0, 0, 0), (8, 8, 40, 40))
    unit = {
        "enabled": True,
        "module": "none",
        "model": "tinycontrol [0123abcd]",
        "image": _b64(control),
        "weight": 1.0,
        "guidance_start": 0.0,
        "guidance_end": 1.0,
    }
    body = {"prompt": "a cat", "seed": 8, **SMALL, "override_settings": {"sd_model_checkpoint": "tiny"}}
    with _bearer(sd) as http:
        plain = http.post("/sdapi/v1/txt2img", json=body).json()["images"]
        guided = http.post("/sdapi/v1/txt2img", json={**body, "alwayson_scripts": {"controlnet": {"args": [unit]}}})
        assert guided.status_code == 200, guided.text
        assert guided.json()["images"] != plain
        two = http.post(
            "/sdapi/v1/txt2img",
            json={
                **body,
                "alwayson_scripts": {
                    "ControlNet": {
                        "args": [
                            unit,
                            {**unit, "weight": 0.5, "guidance_end": 0.5},
                            {**unit, "enabled": False, "model": "nope"},
                        ]
                    }
                },
            },
        )
        assert two.status_code == 200 and two.json()["images"] not in (plain, guided.json()["images"])
        img2img = http.post(
            "/sdapi/v1/img2img",
            json={  # no control image: the init image guides
                **body,
                "init_images": [_b64(control)],
                "alwayson_scripts": {"controlnet": {"args": [{k: v for k, v in unit.items() if k != "image"}]}},
            },
        )
        assert img2img.status_code == 200, img2img.text
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (0, 0, 32, 64))
        inpainted = http.post(
            "/sdapi/v1/img2img",
            json={
                **body,
                "init_images": [_b64(control)],
                "mask": _b64(mask),
                "mask_blur": 0,
                "alwayson_scripts": {"controlnet": {"args": [unit]}},
            },
        )
        assert inpainted.status_code == 200, inpainted.text
        assert _png(inpainted.json()["images"][0]).convert("RGB").getpixel((60, 60)) == (255, 255, 255)
        outputs = {guided.json()["images"][0]}
        for module in ("canny", "invert (from white bg & black line)"):  # run by the worker on the control image
            made = http.post(
                "/sdapi/v1/txt2img",
                json={
                    **body,
                    "alwayson_scripts": {
                        "controlnet": {"args": [{**unit, "module": module, "threshold_a": -1, "threshold_b": -1}]}
                    },
                },
            )
            assert made.status_code == 200, made.text
            outputs.add(made.json()["images"][0])
        assert len(outputs) == 3  # each preprocessor gave the ControlNet another control image
        for bad, status in (
            ({**unit, "model": "nope"}, 404),
            ({**unit, "module": "depth_midas"}, 422),
            ({**unit, "module": "canny", "threshold_a": 200, "threshold_b": 100}, 422),
            ({k: v for k, v in unit.items() if k != "image"}, 422),
            ({**unit, "weight": 3}, 422),
            ({**unit, "image": "%%"}, 400),
        ):
            resp = http.post("/sdapi/v1/txt2img", json={**body, "alwayson_scripts": {"controlnet": {"args": [bad]}}})
            assert resp.status_code == status, (bad, resp.text)
        assert (
            http.post("/sdapi/v1/txt2img", json={**body, "alwayson_scripts": {"adetailer": {"args": [{}]}}}).status_code
            == 422
        )


def test_vae_from_the_folder_by_option_or_override(sd: str) -> None:
    body = {"prompt": "a cat", "seed": 9, **SMALL, "override_settings": {"sd_model_checkpoint": "tiny"}}
    with _bearer(sd) as http:
        assert http.get("/sdapi/v1/sd-vae").json() == [
            {"model_name": "tinyvae.safetensors", "filename": "tinyvae.safetensors"}
        ]
        base = http.post("/sdapi/v1/txt2img", json=body).json()
        swapped = http.post(
            "/sdapi/v1/txt2img",
            json={**body, "override_settings": {"sd_model_checkpoint": "tiny", "sd_vae": "tinyvae"}},
        ).json()
        assert swapped["images"] != base["images"]
        assert "VAE: tinyvae.safetensors" in json.loads(swapped["info"])["infotexts"][0]
        assert http.post("/sdapi/v1/txt2img", json=body).json()["images"] == base["images"]  # the own VAE again
        assert http.post("/sdapi/v1/options", json={"sd_vae": "tinyvae.safetensors"}).status_code == 200
        assert http.get("/sdapi/v1/options").json()["sd_vae"] == "tinyvae.safetensors"
        assert http.post("/sdapi/v1/txt2img", json=body).json()["images"] == swapped["images"]
        assert http.post("/sdapi/v1/options", json={"sd_vae": "murky"}).status_code == 404
        assert http.post("/sdapi/v1/options", json={"sd_vae": "Automatic"}).status_code == 200
        assert http.post("/sdapi/v1/txt2img", json=body).json()["images"] == base["images"]


def test_png_info_reads_back_the_infotext(sd: str) -> None:
    with _bearer(sd) as http:
        image = http.post(
            "/sdapi/v1/txt2img", json={"prompt": "a cat, red", "seed": 77, "sampler_name": "DDIM", **SMALL}
        ).json()["images"][0]
        info = http.post("/sdapi/v1/png-info", json={"image": "data:image/png;base64," + image}).json()
    assert info["info"].startswith("a cat, red\nSteps: 3")
    params = info["parameters"]
    assert params["Prompt"] == "a cat, red" and params["Seed"] == 77 and params["Sampler"] == "DDIM"
    assert (params["Size-1"], params["Size-2"]) == (64, 64)


def test_interrupt_stops_the_running_generation(sd: str) -> None:
    result: dict[str, httpx.Response] = {}
    with _bearer(sd) as http:

        def generate() -> None:
            result["r"] = http.post(
                "/sdapi/v1/txt2img", json={"prompt": "slow", "steps": 60, "width": 256, "height": 256}
            )

        thread = threading.Thread(target=generate)
        thread.start()
        wait_until(
            lambda: http.get("/sdapi/v1/progress").json()["state"]["sampling_step"] >= 1, 30, "the generation to start"
        )
        started = time.monotonic()
        assert http.post("/sdapi/v1/interrupt").json() == {}
        thread.join(30)
        assert result["r"].status_code == 499 and time.monotonic() - started < 5
        assert http.get("/sdapi/v1/progress").json()["progress"] == 0
        # the worker is free again
        assert http.post("/sdapi/v1/txt2img", json={"prompt": "next", **SMALL}).status_code == 200


def test_an_engine_crash_fails_its_job_once_and_the_worker_goes_on(
    sd: str, cluster: Cluster, redis_server: RedisServer
) -> None:
    """A native crash in the diffusers engine (SIGSEGV) ends its child process, not the worker."""
    r = redis_server.client()
    with _bearer(sd) as http, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            http.post, "/sdapi/v1/txt2img", json={"prompt": "crash", "steps": 60, "width": 128, "height": 128}
        )
        wait_until(lambda: http.get("/sdapi/v1/progress").json()["state"]["sampling_step"] >= 1, 30, "the job")
        [(job_id, holder)] = [
            (key.decode().rsplit(":", 1)[1], record[b"worker"].decode())
            for key in r.scan_iter(keys.job("*"))
            if (record := r.hgetall(key)).get(b"kind") == b"sd" and record[b"state"] == b"active"
        ]
        worker = next(p for p in cluster.procs if f"worker {holder} ready" in p.output())
        [engine] = psutil.Process(worker.proc.pid).children()
        engine.send_signal(signal.SIGSEGV)
        resp = pending.result(60)
        error = resp.json()  # in A1111's shape, as its clients read errors
        assert resp.status_code == 502 and error["code"] == "engine_crashed" and "SIGSEGV" in error["detail"], error
        assert worker.alive()
        record = r.hgetall(keys.job(job_id))
        assert record[b"state"] == b"failed" and record[b"attempts"] == b"1"
        assert any(fields[b"id"] == job_id.encode() for _, fields in r.xrange(keys.DEAD))
        # the engine is back, on the same worker
        again = http.post("/sdapi/v1/txt2img", json={"prompt": "next", **SMALL})
        assert again.status_code == 200 and again.headers["x-worker-id"] == holder


@pytest.mark.parametrize(
    ("route", "body", "status", "param"),
    [
        ("txt2img", {"width": 65}, 422, "width"),
        ("txt2img", {"height": 512}, 422, "height"),  # over SD_MAX_SIZE=256
        ("txt2img", {"steps": 61}, 422, "steps"),
        ("txt2img", {"sampler_name": "DPM fast"}, 400, "sampler_name"),
        ("txt2img", {"sampler_name": "Euler a", "scheduler": "karras"}, 400, "sampler_name"),
        ("txt2img", {"override_settings": {"sd_model_checkpoint": "nope"}}, 404, "override_settings"),
        ("txt2img", {"batch_size": 8, "n_iter": 3}, 422, "batch_size"),
        ("txt2img", {"script_name": "xyz"}, 422, "script_name"),
        ("img2img", {}, 422, "init_images"),
        ("img2img", {"init_images": ["not base64!"]}, 400, "init_images"),
        ("img2img", {"init_images": [base64.b64encode(b"just text").decode()]}, 400, "init_images"),
        ("img2img", {"init_images": ["SMALL"], "mask": "SMALL-MASK-32"}, 400, "mask"),
    ],
)
def test_bad_input_is_a_4xx_before_anything_is_queued(
    sd: str, route: str, body: dict[str, Any], status: int, param: str
) -> None:
    images = {"SMALL": _b64(Image.new("RGB", (64, 64))), "SMALL-MASK-32": _b64(Image.new("L", (32, 32)))}
    body = {
        k: [images.get(i, i) for i in v] if k == "init_images" else images.get(v, v) if isinstance(v, str) else v
        for k, v in body.items()
    }
    with _bearer(sd) as http:
        resp = http.post(f"/sdapi/v1/{route}", json={"prompt": "x", **SMALL, **body})
        assert resp.status_code == status, resp.text
        error = resp.json()
        assert error["detail"] and param in str(error) and "X-Job-ID" not in resp.headers


def test_auth_basic_with_the_token_as_password_or_bearer(sd: str) -> None:
    with _client(sd) as http:
        assert http.get("/sdapi/v1/samplers", auth=("anyone", TOKEN)).status_code == 200
        assert http.get("/sdapi/v1/samplers", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        wrong = http.get("/sdapi/v1/samplers", auth=("anyone", "wrong"))
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
        assert http.get("/sdapi/v1/progress").status_code == 401
        names = [s["name"] for s in http.get("/sdapi/v1/samplers", auth=("u", TOKEN)).json()]
        assert "Euler a" in names and "DPM++ 2M" in names
        labels = [s["label"] for s in http.get("/sdapi/v1/schedulers", auth=("u", TOKEN)).json()]
        assert "Karras" in labels


def test_openai_images_generations(sd: str) -> None:
    with _bearer(sd) as http:
        resp = http.post(
            "/v1/images/generations", json={"prompt": "a cat", "n": 2, "size": "64x64", "steps": 2, "model": "tiny"}
        )
        assert resp.status_code == 200, resp.text
        data = resp.json()["data"]
        assert len(data) == 2 and _png(data[0]["b64_json"]).size == (64, 64)
        bad = http.post("/v1/images/generations", json={"prompt": "a cat", "size": "100x100"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "size"
        by_url = http.post(
            "/v1/images/generations",
            json={"prompt": "a cat", "size": "64x64", "steps": 2, "n": 2, "seed": 5, "response_format": "url"},
        )
        assert by_url.status_code == 200, by_url.text
        urls = [d["url"] for d in by_url.json()["data"]]
        assert len(urls) == 2 and all(u.startswith(sd + "/v1/images/files/") for u in urls)
    png = httpx.get(urls[0], timeout=10)  # no token: the URL is the key
    assert png.headers["content-type"] == "image/png" and Image.open(io.BytesIO(png.content)).size == (64, 64)
    assert httpx.get(urls[0].replace("files/", "files/x"), timeout=10).status_code == 404


def test_text_and_image_routes_refuse_each_others_models_at_once(sd: str, gateway: Gateway) -> None:
    with _bearer(sd) as http:
        began = time.monotonic()
        text = http.post("/completion", json={"prompt": "x", "model": "tiny"})
        chat = http.post(
            "/v1/chat/completions", json={"model": "tiny-single", "messages": [{"role": "user", "content": "x"}]}
        )
        image = http.post(
            "/sdapi/v1/txt2img", json={"prompt": "x", **SMALL, "override_settings": {"sd_model_checkpoint": MODEL}}
        )
        openai_image = http.post("/v1/images/generations", json={"prompt": "x", "size": "64x64", "model": MODEL})
        took = time.monotonic() - began
    assert [r.status_code for r in (text, chat, image, openai_image)] == [404] * 4
    assert "image checkpoint" in text.text and MODEL in text.text  # and what the text routes serve
    assert took < 10  # not after QUEUE_TIMEOUT (120 s)


def test_daily_image_quota_and_usage(sd: str) -> None:
    with _client(sd, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        secret = admin.post("/admin/tokens", json={"name": "two-images", "daily_images": 2}).json()["token"]
    body = {"prompt": "a cat", "n": 2, "size": "64x64", "steps": 2, "model": "tiny"}
    with _client(sd, headers={"Authorization": f"Bearer {secret}"}) as http:
        first = http.post("/v1/images/generations", json=body)
        over = http.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "width": 64, "height": 64, "steps": 2})
    assert first.status_code == 200, first.text
    assert over.status_code == 429 and "daily quota" in over.json()["detail"]
    with _client(sd, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        usage = admin.get("/admin/usage").json()["tokens"]
    mine = next(u for u in usage.values() if u["name"] == "two-images")
    assert mine["images"] == 2 and mine["jobs"] == 1


def test_a_killed_sd_workers_job_is_finished_by_another(
    sd: str, cluster: Cluster, models_dir: Path, redis_server: RedisServer
) -> None:
    """The job's seed was fixed at submission: the worker that takes it over makes the same image."""
    r = redis_server.client()
    survivor = cluster.sd_worker(models_dir)
    body = {
        "prompt": "a cat",
        "seed": 21,
        "steps": 40,
        "width": 128,
        "height": 128,
        "override_settings": {"sd_model_checkpoint": "tiny"},
    }
    try:
        with _bearer(sd) as http, ThreadPoolExecutor(1) as pool:
            pending = pool.submit(http.post, "/sdapi/v1/txt2img", json=body)
            wait_until(lambda: http.get("/sdapi/v1/progress").json()["state"]["sampling_step"] >= 2, 30, "the job")
            [(job_id, holder)] = [
                (key.decode().rsplit(":", 1)[1], record[b"worker"].decode())
                for key in r.scan_iter(keys.job("*"))
                if (record := r.hgetall(key)).get(b"kind") == b"sd" and record[b"state"] == b"active"
            ]
            victim = next(p for p in cluster.procs if f"worker {holder} ready" in p.output())
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(10)
            resp = pending.result(60)
            assert resp.status_code == 200, resp.text
            assert resp.headers["x-worker-id"] != holder and r.hget(keys.job(job_id), "attempts") == b"2"
            again = http.post("/sdapi/v1/txt2img", json=body)
        assert resp.json()["images"] == again.json()["images"]
    finally:
        survivor.stop()  # no SD worker outlives this module (the module's own stops with it)


def test_graycat_up_starts_an_sd_worker_when_the_models_folder_has_checkpoints(
    tmp_path: Path, models_dir: Path
) -> None:
    from tests.test_standalone_e2e import _up

    proc, base, lines = _up(tmp_path, API_TOKENS="mine", SD_MODELS_DIR=str(models_dir), SD_THREADS="1")
    try:
        [ready] = [line for line in lines if "ready at" in line]
        assert "text: SmolLM2-135M-Instruct" in ready and "images: " in ready  # what serves what
        # sent at once, while the image worker may still load: it waits for it rather than a 503
        resp = httpx.post(base + "/sdapi/v1/txt2img", auth=("u", "mine"), json={"prompt": "x", **SMALL}, timeout=120)
        assert resp.status_code == 200 and len(resp.json()["images"]) == 1
        assert len(httpx.get(base + "/sdapi/v1/sd-models", auth=("u", "mine"), timeout=5).json()) == 3
        if "image worker loading tiny, tiny-inpaint, tiny-single" in ready:  # told once it is up
            wait_until(
                lambda: any("image worker ready: tiny, tiny-inpaint, tiny-single" in ln for ln in lines),
                30,
                "graycat up to say the image worker is ready",
            )
        else:
            assert "images: tiny, tiny-inpaint, tiny-single" in ready
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
