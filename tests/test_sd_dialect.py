"""The image parts that need no torch: sampler names, infotexts, checkpoint names, A1111 request checks."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from graycat.api.dialects import a1111
from graycat.api.errors import ApiError
from graycat.images import checkpoints, codec, infotext, loras
from graycat.images.params import GenerationParams, HiresFix
from graycat.images.samplers import SAMPLERS, SCHEDULES, UnknownSampler, resolve

LIMITS = a1111.Limits(max_size=1024, max_steps=100, max_images=8)
MODEL = {"loras": ["ink"], "vaes": ["clear.safetensors"]}


def _b64(image: Image.Image, fmt: str = "PNG") -> str:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize("name", [s.name for s in SAMPLERS] + [a for s in SAMPLERS for a in s.aliases])
def test_every_a1111_sampler_name_and_alias_resolves(name: str) -> None:
    choice = resolve(name)
    assert choice.schedule.name == "automatic" and choice.sampler.scheduler_class.endswith("Scheduler")


def test_schedule_from_the_name_suffix_or_the_scheduler_field() -> None:
    assert resolve("DPM++ 2M Karras").scheduler_kwargs() == {"use_karras_sigmas": True}
    assert resolve("DPM++ 2M SDE Karras").scheduler_kwargs() == {
        "algorithm_type": "sde-dpmsolver++",
        "use_karras_sigmas": True,
    }
    assert resolve("Euler", "exponential").scheduler_kwargs() == {"use_exponential_sigmas": True}
    assert resolve("LMS Karras", "Uniform").schedule.name == "uniform"  # the explicit field wins
    assert resolve(None).sampler.name == "Euler a" and resolve("", "").sampler.name == "Euler a"
    for bad in (("DPM fast", None), ("Euler a Karras", None), ("Euler", "beta"), ("DDIM", "karras")):
        with pytest.raises(UnknownSampler):
            resolve(*bad)
    assert {s.name for s in SCHEDULES} >= {"automatic", "karras"}


def test_infotext_round_trip() -> None:
    text = infotext.build(
        "a cat, red\nsecond line",
        "dog",
        {
            "Steps": 20,
            "Sampler": "DPM++ 2M",
            "CFG scale": 7.5,
            "Seed": 42,
            "Size": "512x768",
            "Model": "x: y",
            "Clip skip": None,
        },
    )
    assert text == (
        "a cat, red\nsecond line\nNegative prompt: dog\nSteps: 20, Sampler: DPM++ 2M, CFG scale: 7.5, "
        'Seed: 42, Size: 512x768, Model: "x: y"'
    )
    parsed = infotext.parse(text)
    assert parsed["Prompt"] == "a cat, red\nsecond line" and parsed["Negative prompt"] == "dog"
    assert (parsed["Steps"], parsed["CFG scale"], parsed["Seed"], parsed["Model"]) == (20, 7.5, 42, "x: y")
    assert (parsed["Size-1"], parsed["Size-2"]) == (512, 768)
    assert infotext.parse("just a prompt") == {"Prompt": "just a prompt", "Negative prompt": ""}


def test_checkpoint_names_as_a1111_accepts_them(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "Stable-diffusion"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "dream.safetensors").write_bytes(b"weights")
    (folder / "folder-model" / "unet").mkdir(parents=True)
    (folder / "folder-model" / "model_index.json").write_text("{}")
    (folder / "folder-model" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"w")
    found = checkpoints.scan(tmp_path)
    assert [c.model_name for c in found] == ["folder-model", "sub_dream"]
    models = {c.model_name: c.info() for c in found}
    dream = models["sub_dream"]
    assert dream["title"] == f"sub/dream.safetensors [{dream['hash']}]" and len(dream["sha256"]) == 64
    for name in (
        "sub_dream",
        dream["title"],
        "sub/dream.safetensors",
        "dream",
        dream["hash"],
        dream["sha256"],
        f"dream [{dream['hash']}]",
    ):
        assert checkpoints.find(name, models) == "sub_dream", name
    assert checkpoints.find("folder-model", models) == "folder-model"
    assert checkpoints.find("nope", models) is None
    with pytest.raises(FileNotFoundError, match="Stable-diffusion"):
        checkpoints.scan(tmp_path / "elsewhere")


def test_request_checks_and_the_job_they_make() -> None:
    image = _b64(Image.new("RGB", (64, 48)), "JPEG")
    req = a1111.Img2ImgRequest(
        prompt="p",
        init_images=[image],
        mask=_b64(Image.new("L", (64, 48))),
        seed=-1,
        subseed=5,
        width=64,
        height=48,
        steps=10,
        sampler_name="Euler Karras",
        inpainting_mask_invert=1,
        override_settings={"CLIP_stop_at_last_layers": 2},
    )
    params = a1111.to_params(req, checkpoint="m", model=MODEL, saved={}, limits=LIMITS, random_seeds=(11, 22))
    assert (params.mode, params.seed, params.subseed, params.clip_skip) == ("img2img", 11, 5, 2)
    assert (params.sampler, params.schedule, params.inpainting_mask_invert) == ("Euler", "karras", True)
    assert params.denoising_strength == 0.75 and params.init_images == [image]
    with pytest.raises(ApiError, match="mask is 32x32 but the init image is 64x48"):
        a1111.to_params(
            req.model_copy(update={"mask": _b64(Image.new("L", (32, 32)))}),
            checkpoint="m",
            model=MODEL,
            saved={},
            limits=LIMITS,
            random_seeds=(1, 2),
        )
    with pytest.raises(ApiError, match="GIF"):
        a1111.to_params(
            req.model_copy(update={"init_images": [_b64(Image.new("RGB", (8, 8)), "GIF")]}),
            checkpoint="m",
            model=MODEL,
            saved={},
            limits=LIMITS,
            random_seeds=(1, 2),
        )
    with pytest.raises(ApiError, match="CLIP_stop_at_last_layers"):
        a1111.to_params(
            a1111.Txt2ImgRequest(width=64, height=64, override_settings={"CLIP_stop_at_last_layers": 0}),
            checkpoint="m",
            model=MODEL,
            saved={},
            limits=LIMITS,
            random_seeds=(1, 2),
        )


def test_parameters_echo_has_no_nulls_where_a1111_clients_need_values() -> None:
    raw = {
        "prompt": "p",
        "restore_faces": None,
        "tiling": None,
        "seed": -1,
        "steps": 20,
        "subseed_strength": 0,
        "custom_field": "kept",
        "init_images": ["..."],
        "mask": "...",
    }
    echo = a1111.parameters_echo(raw, img2img=True)
    assert echo["restore_faces"] is False and echo["tiling"] is False and echo["steps"] == 20
    assert echo["custom_field"] == "kept" and echo["init_images"] is None and echo["mask"] is None
    for key in (
        "cfg_scale",
        "denoising_strength",
        "eta",
        "s_churn",
        "mask_blur",
        "inpainting_fill",
        "resize_mode",
        "initial_noise_multiplier",
        "batch_size",
        "n_iter",
        "width",
        "height",
    ):
        assert isinstance(echo[key], int | float), key
    assert a1111.parameters_echo({"include_init_images": True, "init_images": ["x"]}, True)["init_images"] == ["x"]


def test_progress_from_the_latest_event() -> None:
    assert a1111.progress(None, None, None, 0)["progress"] == 0
    record = {"state": "active", "created": "100.0", "started": "101.0"}
    event = json.dumps({"job_no": 1, "job_count": 2, "step": 5, "steps": 10}).encode()
    answer = a1111.progress(record, event, "abc", 104.0)
    assert answer["progress"] == 0.75 and answer["eta_relative"] == 1.0
    assert answer["state"]["sampling_step"] == 5 and answer["state"]["job"] == "task(abc)"
    assert a1111.progress({**record, "state": "cancelled"}, None, "abc", 0)["state"]["interrupted"] is True


def test_images_decode_from_data_urls_and_refuse_the_rest() -> None:
    png = _b64(Image.new("RGB", (8, 8)))
    assert codec.decode("data:image/png;base64," + png).size == (8, 8)
    for bad in ("%%%", base64.b64encode(b"text").decode(), png[: len(png) // 2]):
        with pytest.raises(codec.BadImage):
            codec.decode(bad)


def test_lora_prompt_syntax() -> None:
    assert loras.parse("a cat <lora:ink:0.7>, red <lora:glow>") == ("a cat , red", {"ink": 0.7, "glow": 1.0})
    assert loras.parse("<lora:ink:0.5:0.2> x")[1] == {"ink": 0.5}  # A1111's separate text encoder weight
    with pytest.raises(ValueError, match="not a number"):
        loras.parse("<lora:ink:lots>")
    a1111.check_loras("x <lora:ink:1>", {"loras": ["ink"]})
    with pytest.raises(ApiError, match="LoRA 'nope' not found; available: ink"):
        a1111.check_loras("x <lora:nope:1>", {"loras": ["ink"]})


def test_vae_choice() -> None:
    assert a1111.choose_vae("clear", None, MODEL["vaes"], "p") == "clear.safetensors"
    assert a1111.choose_vae("Automatic", "clear.safetensors", MODEL["vaes"], "p") is None
    assert a1111.choose_vae(None, "clear.safetensors", MODEL["vaes"], "p") == "clear.safetensors"
    assert a1111.choose_vae(None, "gone.safetensors", MODEL["vaes"], "p") is None  # a saved one no worker has
    with pytest.raises(ApiError, match="VAE 'murky' not found"):
        a1111.choose_vae("murky", None, MODEL["vaes"], "p")
    req = a1111.Txt2ImgRequest(width=64, height=64, override_settings={"sd_vae": "clear.safetensors"})
    assert (
        a1111.to_params(
            req,
            checkpoint="m",
            model=MODEL,
            saved={"CLIP_stop_at_last_layers": "2"},
            limits=LIMITS,
            random_seeds=(1, 2),
        ).vae
        == "clear.safetensors"
    )


def _hires(**fields: object) -> GenerationParams:
    req = a1111.Txt2ImgRequest(width=64, height=48, steps=4, enable_hr=True, **fields)  # type: ignore[arg-type]
    return a1111.to_params(req, checkpoint="m", model=MODEL, saved={}, limits=LIMITS, random_seeds=(1, 2))


def test_hires_fix_sizes_upscalers_and_second_pass_settings() -> None:
    plain = _hires()
    assert plain.hires == HiresFix(128, 96, "Latent", 0, denoising_strength=0.75)  # A1111's: x2, Latent, same steps
    assert _hires(hr_resize_x=100).hires.width == 96 and _hires(hr_resize_x=100).hires.height == 72  # type: ignore
    made = _hires(
        hr_scale=1.5,
        hr_upscaler="lanczos",
        hr_second_pass_steps=3,
        denoising_strength=0.4,
        hr_sampler_name="DPM++ 2M Karras",
        hr_prompt="sharp",
    ).hires
    assert made == HiresFix(
        96, 72, "Lanczos", 3, denoising_strength=0.4, sampler="DPM++ 2M", schedule="karras", prompt="sharp"
    )
    assert _hires(hr_scale=1.265).hires.width == 80  # type: ignore[union-attr]  # int(64 x 1.265) = 80
    covered = _hires(hr_resize_x=128, hr_resize_y=128).hires  # 64x48 covers 128x128 at 170x128, then crops
    assert covered is not None and (covered.width, covered.height) == (128, 128)
    assert (covered.upscale_width, covered.upscale_height) == (170, 128)
    nulls = {
        f"hr_{name}": None
        for name in (
            "scale",
            "upscaler",
            "second_pass_steps",
            "resize_x",
            "resize_y",
            "checkpoint_name",
            "sampler_name",
            "scheduler",
            "prompt",
            "negative_prompt",
        )
    }
    assert _hires(**nulls).hires == plain.hires  # A1111 clients send null for what they leave alone
    unused = a1111.Txt2ImgRequest(width=64, height=64, enable_hr=False, hr_scale=0, hr_second_pass_steps=-1)
    assert (
        a1111.to_params(unused, checkpoint="m", model=MODEL, saved={}, limits=LIMITS, random_seeds=(1, 2)).hires is None
    )  # not checked unless enable_hr
    titled = {**MODEL, "title": "m.safetensors [abc]", "model_name": "m"}
    req = a1111.Txt2ImgRequest(width=64, height=64, enable_hr=True, hr_checkpoint_name="m.safetensors [abc]")
    assert a1111.to_params(req, checkpoint="m", model=titled, saved={}, limits=LIMITS, random_seeds=(1, 2)).hires
    same = _hires(hr_sampler_name="Use same sampler", hr_checkpoint_name="Use same checkpoint").hires
    assert same is not None and same.sampler == ""
    assert GenerationParams.from_json(plain.to_json()) == plain
    assert (
        a1111.to_params(
            a1111.Img2ImgRequest(width=64, height=64, enable_hr=True, init_images=[_b64(Image.new("RGB", (64, 64)))]),
            checkpoint="m",
            model=MODEL,
            saved={},
            limits=LIMITS,
            random_seeds=(1, 2),
        ).hires
        is None
    )  # A1111's img2img has no hires fix


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({"hr_resize_x": 2048}, 422, "hr_resize_x"),  # over SD_MAX_SIZE
        ({"hr_upscaler": "R-ESRGAN 4x+"}, 501, "hr_upscaler"),  # a model upscaler: its weights are not loaded
        ({"hr_upscaler": "Bilinear"}, 400, "hr_upscaler"),
        ({"hr_second_pass_steps": 500}, 422, "hr_second_pass_steps"),
        ({"hr_checkpoint_name": "other"}, 422, "hr_checkpoint_name"),
        ({"hr_sampler_name": "Nope"}, 400, "hr_sampler_name"),
        ({"hr_resize_x": 32, "hr_resize_y": 32}, 422, "hr_resize_x"),
        ({"hr_scale": 0.5}, 422, "hr_scale"),
        ({"hr_prompt": "sharp <lora:ink:0.5>"}, 422, "hr_prompt"),  # the first pass has no LoRA
        ({"hr_prompt": "<lora:nope:1>"}, 400, "hr_prompt"),
    ],
)
def test_bad_hires_settings_are_refused_with_the_field(fields: dict[str, object], status: int, param: str) -> None:
    with pytest.raises(ApiError) as err:
        _hires(**fields)
    assert err.value.status == status and err.value.param == param


def test_the_relay_asks_the_webui_for_the_same_hires_fix() -> None:
    from graycat.workers.engines.a1111_http import a1111_request

    sent = a1111_request(_hires(hr_upscaler="Nearest", hr_sampler_name="Euler", hr_second_pass_steps=3), "m [1]", {})
    assert {
        k: sent[k]
        for k in (
            "enable_hr",
            "hr_resize_x",
            "hr_resize_y",
            "hr_upscaler",
            "hr_second_pass_steps",
            "denoising_strength",
            "hr_sampler_name",
        )
    } == {
        "enable_hr": True,
        "hr_resize_x": 128,
        "hr_resize_y": 96,
        "hr_upscaler": "Nearest",
        "hr_second_pass_steps": 3,
        "denoising_strength": 0.75,
        "hr_sampler_name": "Euler",
    }
    assert "enable_hr" not in a1111_request(GenerationParams("m", "a cat", 1, 64, 64, 4), "m [1]", {})
