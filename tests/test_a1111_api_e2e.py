"""The rest of A1111's API surface end to end: list routes, options (per token, honoured or said to be ignored),
extras upscaling (filters here, ESRGAN-family models on the worker), the SD upscale script, the hires fix with a
model upscaler, and 501 for what needs weights this server does not have."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image, PngImagePlugin

from tests.conftest import TOKEN, Cluster, Proc
from tests.tiny_sd import build_models_folder
from tests.tiny_upscalers import build_upscalers

pytestmark = pytest.mark.e2e

OTHER = "test-token-a1111-other"
SMALL = {"width": 64, "height": 64, "steps": 3}


WORKERS: list[Proc] = []  # the module's SD worker, for its log


@pytest.fixture(scope="module")
def sd(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An api (two tokens) and an SD worker on the tiny models folder, with tiny ESRGAN-family upscalers (and a
    broken file) in models/ESRGAN and models/RealESRGAN; the api's base URL."""
    root = tmp_path_factory.mktemp("sd-a1111")
    build_models_folder(root)
    build_upscalers(root)
    _, base = cluster.api(API_TOKENS=f"{TOKEN},{OTHER}", SD_MAX_SIZE="256", SD_MAX_STEPS="60", SD_MAX_IMAGES="4")
    worker = cluster.sd_worker(root)
    WORKERS.append(worker)
    yield base
    worker.stop()


def _http(base: str, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=base, auth=("a1111-client", token), timeout=120)


def _b64(image: Image.Image, fmt: str = "PNG", **kw: Any) -> str:
    out = io.BytesIO()
    image.save(out, format=fmt, **kw)
    return base64.b64encode(out.getvalue()).decode()


def _image(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def _picture(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A small image with detail, so that resampling filters differ."""
    image = Image.new("RGB", size)
    image.putdata(
        [((x * 37) % 256, (y * 53) % 256, ((x ^ y) * 11) % 256) for y in range(size[1]) for x in range(size[0])]
    )
    return image


def _error(resp: httpx.Response, status: int, param: str) -> str:
    """The A1111-shaped error of a refused request; its message."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] and body["detail"] == body["errors"] and param in str(body["param"]), body
    return str(body["detail"])


def test_list_routes_answer_with_nothing_installed(sd: str) -> None:
    with _http(sd) as http:
        flags = http.get("/sdapi/v1/cmd-flags").json()
        assert flags["api"] is True and flags["nowebui"] is True and flags["port"] == int(sd.rsplit(":", 1)[1])
        assert flags["api_auth"] is None  # never the credentials, unlike A1111
        for route in ("hypernetworks", "face-restorers", "prompt-styles"):
            resp = http.get(f"/sdapi/v1/{route}")
            assert resp.status_code == 200 and resp.json() == [], route
        assert http.get("/sdapi/v1/embeddings").json() == {"loaded": {}, "skipped": {}}
        assert "sd upscale" in http.get("/sdapi/v1/scripts").json()["img2img"]


def test_options_have_a1111_keys_and_persist_per_token(sd: str) -> None:
    with _http(sd) as http, _http(sd, OTHER) as other:
        options = http.get("/sdapi/v1/options").json()
        assert options["send_seed"] is True and options["jpeg_quality"] == 80 and options["samples_format"] == "png"
        assert options["eta_noise_seed_delta"] == 0 and options["CLIP_stop_at_last_layers"] == 1
        assert options["sd_model_checkpoint"].startswith("tiny") and options["samples_save"] is False

        resp = http.post("/sdapi/v1/options", json={"send_seed": False, "samples_format": "jpg", "jpeg_quality": 90})
        assert resp.status_code == 200 and resp.json() is None
        assert resp.headers["X-Graycat-Ignored-Options"] == "send_seed"  # samples_format & co are honoured
        mine = http.get("/sdapi/v1/options").json()
        assert (mine["send_seed"], mine["samples_format"], mine["jpeg_quality"]) == (False, "jpg", 90)
        theirs = other.get("/sdapi/v1/options").json()
        assert (theirs["send_seed"], theirs["samples_format"]) == (True, "png")

        # a setting of this server itself: accepted, said to be ignored, unchanged
        resp = http.post("/sdapi/v1/options", json={"samples_save": True})
        assert resp.status_code == 200 and resp.headers["X-Graycat-Ignored-Options"] == "samples_save"
        assert http.get("/sdapi/v1/options").json()["samples_save"] is False

        # an unknown key (A1111 fails with KeyError): refused, and nothing of that request is stored
        detail = _error(
            http.post("/sdapi/v1/options", json={"send_size": False, "no_such_option": 1}), 400, "no_such_option"
        )
        assert "no_such_option" in detail
        assert http.get("/sdapi/v1/options").json()["send_size"] is True
        for body, param in (
            ({"samples_format": "gif"}, "samples_format"),
            ({"jpeg_quality": 0}, "jpeg_quality"),
            ({"send_seed": "yes"}, "send_seed"),
            ({"eta_noise_seed_delta": -1}, "eta_noise_seed"),
            ({"CLIP_stop_at_last_layers": 13}, "CLIP_stop_at_last_layers"),
        ):
            _error(http.post("/sdapi/v1/options", json=body), 422, param)
        for raw in ('{"jpeg_quality": NaN}', '{"eta_ddim": Infinity}'):  # Python's JSON reader takes these
            _error(
                http.post("/sdapi/v1/options", content=raw, headers={"Content-Type": "application/json"}),
                422,
                raw.split('"')[1],
            )
        http.post("/sdapi/v1/options", json={"send_seed": True, "samples_format": "png", "jpeg_quality": 80})


def test_samples_format_changes_the_images_and_png_info_reads_them(sd: str) -> None:
    job = {"prompt": "a red cube", "seed": 7, **SMALL}
    with _http(sd) as http:
        try:
            for fmt, pil in (("jpg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")):
                assert http.post("/sdapi/v1/options", json={"samples_format": fmt}).status_code == 200
                image = http.post("/sdapi/v1/txt2img", json=job).json()["images"][0]
                assert _image(image).format == pil
                info = http.post("/sdapi/v1/png-info", json={"image": image}).json()
                assert info["info"].startswith("a red cube") and info["parameters"]["Seed"] == 7
            http.post("/sdapi/v1/options", json={"samples_format": "jpg"})
            one_off = http.post("/sdapi/v1/txt2img", json={**job, "override_settings": {"samples_format": "webp"}})
            assert _image(one_off.json()["images"][0]).format == "WEBP"
            low = http.post("/sdapi/v1/txt2img", json={**job, "override_settings": {"jpeg_quality": 5}})
            high = http.post("/sdapi/v1/txt2img", json={**job, "override_settings": {"jpeg_quality": 100}})
            assert len(low.json()["images"][0]) < len(high.json()["images"][0])
            http.post("/sdapi/v1/options", json={"samples_format": "png", "enable_pnginfo": False})
            bare = http.post("/sdapi/v1/txt2img", json=job).json()["images"][0]
            assert "parameters" not in _image(bare).info
        finally:
            http.post("/sdapi/v1/options", json={"samples_format": "png", "enable_pnginfo": True})


def test_eta_noise_seed_delta_moves_the_ancestral_samplers_noise_only(sd: str) -> None:
    def image(sampler: str, ensd: int) -> tuple[bytes, str]:
        resp = http.post(
            "/sdapi/v1/txt2img",
            json={
                "prompt": "a tree",
                "seed": 3,
                "sampler_name": sampler,
                **SMALL,
                "override_settings": {"eta_noise_seed_delta": ensd},
            },
        )
        answer = resp.json()
        return _image(answer["images"][0]).tobytes(), json.loads(answer["info"])["infotexts"][0]

    with _http(sd) as http:
        plain, text = image("Euler a", 0)
        moved, moved_text = image("Euler a", 31337)
        assert plain != moved and "ENSD: 31337" in moved_text and "ENSD" not in text
        assert image("Euler a", 31337)[0] == moved
        assert image("Euler", 0)[0] == image("Euler", 31337)[0]  # no noise of its own: nothing to move
        assert http.post("/sdapi/v1/options", json={"eta_noise_seed_delta": 31337}).status_code == 200
        try:
            saved = http.post(
                "/sdapi/v1/txt2img", json={"prompt": "a tree", "seed": 3, "sampler_name": "Euler a", **SMALL}
            ).json()
            assert _image(saved["images"][0]).tobytes() == moved
        finally:
            http.post("/sdapi/v1/options", json={"eta_noise_seed_delta": 0})


def test_extras_upscale_as_a1111_sizes_it(sd: str) -> None:
    source = _picture()
    meta = PngImagePlugin.PngInfo()
    meta.add_text("parameters", "a picture, Steps: 3")
    out = io.BytesIO()
    source.save(out, format="PNG", pnginfo=meta)
    b64 = base64.b64encode(out.getvalue()).decode()
    with _http(sd) as http:
        resp = http.post(
            "/sdapi/v1/extra-single-image", json={"image": b64, "upscaler_1": "Lanczos", "upscaling_resize": 2}
        )
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        result = _image(answer["image"])
        assert result.size == (128, 96)
        assert result.tobytes() == source.resize((128, 96), Image.Resampling.LANCZOS).tobytes()
        assert result.info["parameters"] == "a picture, Steps: 3"
        assert result.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
        assert answer["html_info"] == "<p>Postprocess upscale by: 2, Postprocess upscaler: Lanczos</p>"

        # to a size, cropped to it: the cover-scaled image centred on the canvas
        to = http.post(
            "/sdapi/v1/extra-single-image",
            json={
                "image": b64,
                "resize_mode": 1,
                "upscaling_resize_w": 100,
                "upscaling_resize_h": 60,
                "upscaling_crop": True,
                "upscaler_1": "Nearest",
            },
        ).json()
        assert _image(to["image"]).size == (100, 60) and "Postprocess crop to: 100x60" in to["html_info"]
        uncropped = http.post(
            "/sdapi/v1/extra-single-image",
            json={
                "image": b64,
                "resize_mode": 1,
                "upscaling_resize_w": 100,
                "upscaling_resize_h": 60,
                "upscaling_crop": False,
                "upscaler_1": "Nearest",
            },
        ).json()
        assert _image(uncropped["image"]).size == (96, 72)  # 1.5625 x, rounded down to multiples of 8

        # a second upscaler blended in at its visibility
        lanczos = source.resize((128, 96), Image.Resampling.LANCZOS)
        nearest = source.resize((128, 96), Image.Resampling.NEAREST)
        blend = http.post(
            "/sdapi/v1/extra-single-image",
            json={"image": b64, "upscaler_1": "Lanczos", "upscaler_2": "Nearest", "extras_upscaler_2_visibility": 0.5},
        ).json()
        assert _image(blend["image"]).tobytes() == Image.blend(lanczos, nearest, 0.5).tobytes()

        # A1111's defaults (upscaler_1 None): the image back as it was
        same = http.post("/sdapi/v1/extra-single-image", json={"image": b64}).json()
        assert _image(same["image"]).tobytes() == source.tobytes() and same["html_info"] == "<p></p>"

        batch = http.post(
            "/sdapi/v1/extra-batch-images",
            json={
                "imageList": [{"data": b64, "name": "a.png"}, {"data": _b64(_picture((32, 32))), "name": "b.png"}],
                "upscaler_1": "Lanczos",
                "upscaling_resize": 3,
            },
        ).json()
        assert [_image(i).size for i in batch["images"]] == [(192, 144), (96, 96)]

        http.post("/sdapi/v1/options", json={"samples_format": "webp"})
        try:
            webp = http.post("/sdapi/v1/extra-single-image", json={"image": b64, "upscaler_1": "Lanczos"}).json()
            assert _image(webp["image"]).format == "WEBP"
        finally:
            http.post("/sdapi/v1/options", json={"samples_format": "png"})


def test_extras_refuse_hostile_and_unsupported_input(sd: str) -> None:
    b64 = _b64(_picture())
    huge = _b64(Image.new("L", (4100, 4100)))  # a small file, but 16.8 million pixels
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("extra-single-image", {"image": "not base64!"}, 400, "image"),
        ("extra-single-image", {"image": base64.b64encode(b"plain text").decode()}, 400, "image"),
        ("extra-single-image", {}, 400, "image"),
        (
            "extra-single-image",
            {"image": b64, "upscaler_1": "Lanczos", "upscaling_resize": 100},
            422,
            "upscaling_resize",
        ),
        (
            "extra-single-image",
            {
                "image": b64,
                "upscaler_1": "Lanczos",
                "resize_mode": 1,
                "upscaling_resize_w": 100000,
                "upscaling_resize_h": 100000,
            },
            413,
            "upscaling_resize",
        ),
        (
            "extra-single-image",
            {
                "image": b64,
                "upscaler_1": "Lanczos",
                "resize_mode": 1,
                "upscaling_resize_w": 8192,
                "upscaling_resize_h": 8,
            },
            413,
            "upscaling_resize",
        ),
        ("extra-single-image", {"image": huge}, 400, "image"),
        ("extra-single-image", {"image": b64, "upscaler_1": "Bicubic-ish"}, 400, "upscaler_1"),
        (
            "extra-single-image",
            {"image": b64, "upscaler_1": "Lanczos", "upscaler_2": "nope", "extras_upscaler_2_visibility": 0.3},
            400,
            "upscaler_2",
        ),
        ("extra-batch-images", {"imageList": []}, 422, "imageList"),
        ("extra-batch-images", {"imageList": [{"data": b64, "name": "x"}] * 5}, 422, "imageList"),
        (
            "extra-batch-images",
            {"imageList": [{"data": b64, "name": "x"}, {"data": "%%", "name": "y"}]},
            400,
            "imageList[1]",
        ),
    ]
    with _http(sd) as http:
        for route, body, status, param in cases:
            _error(http.post(f"/sdapi/v1/{route}", json=body), status, param)
        esrgan = _error(
            http.post("/sdapi/v1/extra-single-image", json={"image": b64, "upscaler_1": "R-ESRGAN 4x+"}),
            501,
            "upscaler_1",
        )
        assert "models/ESRGAN" in esrgan
        faces = _error(
            http.post("/sdapi/v1/extra-single-image", json={"image": b64, "gfpgan_visibility": 0.5}),
            501,
            "gfpgan_visibility",
        )
        assert "GFPGAN" in faces


def test_interrogate_restore_faces_and_model_upscalers_say_what_is_missing(sd: str) -> None:
    b64 = _b64(_picture())
    with _http(sd) as http:
        assert "BLIP" in _error(http.post("/sdapi/v1/interrogate", json={"image": b64}), 501, "model")
        assert "DeepDanbooru" in _error(
            http.post("/sdapi/v1/interrogate", json={"image": b64, "model": "deepdanbooru"}), 501, "model"
        )
        _error(http.post("/sdapi/v1/interrogate", json={"image": b64, "model": "wd14"}), 404, "model")
        _error(http.post("/sdapi/v1/interrogate", json={"image": "???"}), 400, "image")
        for route, extra in (("txt2img", {}), ("img2img", {"init_images": [b64]})):
            detail = _error(
                http.post(f"/sdapi/v1/{route}", json={"prompt": "x", "restore_faces": True, **SMALL, **extra}),
                501,
                "restore_faces",
            )
            assert "CodeFormer" in detail and "X-Job-ID" not in detail
        assert http.post("/sdapi/v1/txt2img", json={"prompt": "x", "restore_faces": False, **SMALL}).status_code == 200
        hires = {"prompt": "x", "enable_hr": True, "hr_scale": 2, **SMALL}
        assert "models/ESRGAN" in _error(
            http.post("/sdapi/v1/txt2img", json={**hires, "hr_upscaler": "4x-UltraSharp"}), 501, "hr_upscaler"
        )
        _error(http.post("/sdapi/v1/txt2img", json={**hires, "hr_upscaler": "Bilinear"}), 400, "hr_upscaler")
        assert "no prompt styles" in _error(
            http.post("/sdapi/v1/txt2img", json={"prompt": "x", "styles": ["cinematic"], **SMALL}), 422, "styles"
        )


def test_sd_upscale_script_upscales_then_redraws_in_tiles(sd: str) -> None:
    init = _picture((64, 64))
    job = {
        "prompt": "a mosaic",
        "seed": 11,
        "init_images": [_b64(init)],
        "denoising_strength": 0.5,
        "script_name": "SD upscale",
        "script_args": ["", 8, "Lanczos", 2.0],
        **SMALL,
    }
    with _http(sd) as http:
        resp = http.post("/sdapi/v1/img2img", json=job)
        assert resp.status_code == 200, resp.text
        first = _image(resp.json()["images"][0])
        assert first.size == (128, 128)
        again = _image(http.post("/sdapi/v1/img2img", json=job).json()["images"][0])
        assert again.tobytes() == first.tobytes()
        by_index = http.post("/sdapi/v1/img2img", json={**job, "script_args": ["", 8, 1, 2.0]}).json()
        assert _image(by_index["images"][0]).tobytes() == first.tobytes()  # index 1 of /upscalers: Lanczos
        # redrawn, not merely resized
        assert first.tobytes() != init.resize((128, 128), Image.Resampling.LANCZOS).tobytes()
        two = http.post("/sdapi/v1/img2img", json={**job, "n_iter": 2}).json()
        assert [_image(i).size for i in two["images"]] == [(128, 128)] * 2

        refused: list[tuple[dict[str, Any], int, str]] = [
            ({"script_args": ["", 8, "Lanczos", 10]}, 422, "script_args"),
            ({"script_args": ["", 64, "Lanczos", 2]}, 422, "script_args"),  # overlap as wide as a tile
            ({"script_args": ["", 8, "Bilinear", 2]}, 400, "script_args"),
            ({"script_args": ["", 8, "R-ESRGAN 4x+", 2]}, 501, "script_args"),
            ({"script_args": ["", 0, "Lanczos", 4], "width": 8, "height": 8}, 422, "script_args"),  # too much work
            ({"script_args": ["", 8, "None", 2], "width": 128, "height": 128}, 422, "script_args"),
            ({"mask": _b64(Image.new("L", (64, 64), 255))}, 422, "mask"),
        ]
        for change, status, param in refused:
            _error(http.post("/sdapi/v1/img2img", json={**job, **change}), status, param)
        _error(
            http.post("/sdapi/v1/txt2img", json={"prompt": "x", "script_name": "SD upscale", **SMALL}),
            422,
            "script_name",
        )


def test_esrgan_models_are_listed_and_a_broken_file_is_skipped(sd: str) -> None:
    with _http(sd) as http:
        listed = http.get("/sdapi/v1/upscalers").json()
        assert [u["name"] for u in listed] == [
            "None",
            "Lanczos",
            "Nearest",
            "4x-tiny",
            "RealESRGAN_x2tiny",
            "old-tiny",
            "realesr-tiny-x4",
        ]
        assert listed[4] == {
            "name": "RealESRGAN_x2tiny",
            "model_name": "RealESRGAN_x2tiny",
            "model_path": "RealESRGAN/RealESRGAN_x2tiny.pth",
            "model_url": None,
            "scale": 2,
        }
        assert http.get("/sdapi/v1/realesrgan-models").json() == [
            {"name": "RealESRGAN_x2tiny", "path": "RealESRGAN/RealESRGAN_x2tiny.pth", "scale": 2},
            {"name": "realesr-tiny-x4", "path": "RealESRGAN/realesr-tiny-x4.safetensors", "scale": 4},
        ]
    assert "not serving upscaler" in WORKERS[0].output() and "broken.pth" in WORKERS[0].output()


def test_extras_run_esrgan_models_on_the_worker(sd: str) -> None:
    source = _picture()
    b64 = _b64(source)
    with _http(sd) as http:

        def upscale(**body: Any) -> Image.Image:
            resp = http.post("/sdapi/v1/extra-single-image", json={"image": b64, **body})
            assert resp.status_code == 200, resp.text
            return _image(resp.json()["image"])

        x4 = upscale(upscaler_1="4x-tiny", upscaling_resize=4)
        assert x4.size == (256, 192)
        assert x4.tobytes() != source.resize((256, 192), Image.Resampling.LANCZOS).tobytes()
        assert x4.info["postprocessing"] == "Postprocess upscale by: 4, Postprocess upscaler: 4x-tiny"
        assert upscale(upscaler_1="4X-TINY", upscaling_resize=4).tobytes() == x4.tobytes()  # names: any case
        old = upscale(upscaler_1="old-tiny", upscaling_resize=4)
        assert old.size == (256, 192) and old.tobytes() != x4.tobytes()
        x2 = upscale(upscaler_1="RealESRGAN_x2tiny", upscaling_resize=2)  # RealESRGAN_x2plus's pixel unshuffle
        assert x2.size == (128, 96)
        assert x2.tobytes() != source.resize((128, 96), Image.Resampling.LANCZOS).tobytes()
        # a x4 model asked for x2: one pass, then Lanczos down to the size
        assert upscale(upscaler_1="realesr-tiny-x4", upscaling_resize=2).size == (128, 96)
        blended = upscale(
            upscaler_1="Lanczos", upscaler_2="realesr-tiny-x4", extras_upscaler_2_visibility=0.5, upscaling_resize=2
        )
        assert "Postprocess upscaler 2: realesr-tiny-x4" in blended.info["postprocessing"]
        batch = http.post(
            "/sdapi/v1/extra-batch-images",
            json={
                "imageList": [{"data": b64, "name": "a"}, {"data": _b64(_picture((32, 32))), "name": "b"}],
                "upscaler_1": "realesr-tiny-x4",
                "upscaling_resize": 4,
            },
        )
        assert batch.status_code == 200, batch.text
        assert [_image(i).size for i in batch.json()["images"]] == [(256, 192), (128, 128)]
        # hostile sizes are refused before anything is queued, as for the filters
        _error(
            http.post(
                "/sdapi/v1/extra-single-image",
                json={
                    "image": b64,
                    "upscaler_1": "4x-tiny",
                    "resize_mode": 1,
                    "upscaling_resize_w": 100000,
                    "upscaling_resize_h": 100000,
                },
            ),
            413,
            "upscaling_resize",
        )
        _error(
            http.post("/sdapi/v1/extra-single-image", json={"image": b64, "upscaler_1": "broken"}), 400, "upscaler_1"
        )


def test_hires_fix_and_sd_upscale_use_an_esrgan_model(sd: str) -> None:
    hires = {"prompt": "a harbour", "seed": 5, "enable_hr": True, "hr_scale": 2, "denoising_strength": 0, **SMALL}
    with _http(sd) as http:
        by_model = http.post("/sdapi/v1/txt2img", json={**hires, "hr_upscaler": "4x-tiny"})
        assert by_model.status_code == 200, by_model.text
        image = _image(by_model.json()["images"][0])
        assert image.size == (128, 128)
        assert "Hires upscaler: 4x-tiny" in json.loads(by_model.json()["info"])["infotexts"][0]
        lanczos = _image(http.post("/sdapi/v1/txt2img", json={**hires, "hr_upscaler": "Lanczos"}).json()["images"][0])
        assert image.tobytes() != lanczos.tobytes()
        tiled = http.post(
            "/sdapi/v1/img2img",
            json={
                "prompt": "x",
                "init_images": [_b64(_picture((64, 64)))],
                "denoising_strength": 0.5,
                "script_name": "SD upscale",
                "script_args": ["", 8, "RealESRGAN_x2tiny", 2.0],
                **SMALL,
            },
        )
        assert tiled.status_code == 200, tiled.text
        assert _image(tiled.json()["images"][0]).size == (128, 128)
