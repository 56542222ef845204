"""The answer of a generation job, as A1111 gives it: images (PNG, or the token's samples_format) carrying their
infotext, and the `info` string."""

from __future__ import annotations

import time
from typing import Any

import orjson
from PIL import Image

from graycat import __version__
from graycat.images import codec, infotext
from graycat.images.params import GenerationParams
from graycat.images.samplers import resolve


def _settings(p: GenerationParams, model: dict[str, Any], seed: int, subseed: int) -> dict[str, Any]:
    choice = resolve(p.sampler, p.schedule)
    img2img = p.mode == "img2img"
    hires = p.hires
    return {
        "Steps": p.steps,
        "Sampler": choice.sampler.name,
        "Schedule type": choice.schedule.label if choice.schedule.name != "automatic" else None,
        "CFG scale": p.cfg_scale,
        "Seed": seed,
        "Size": f"{p.width}x{p.height}",
        "Model hash": model.get("hash"),
        "Model": model.get("model_name"),
        "VAE": p.vae,
        "Denoising strength": p.denoising_strength if img2img else hires.denoising_strength if hires else None,
        "Hires resize": f"{hires.width}x{hires.height}" if hires else None,
        "Hires steps": hires.steps or None if hires else None,
        "Hires upscaler": hires.upscaler if hires else None,
        "Refiner": p.refiner,
        "Refiner switch at": p.refiner_switch_at if p.refiner else None,
        "Clip skip": p.clip_skip if p.clip_skip > 1 else None,
        "Mask blur": p.mask_blur if p.mask else None,
        "Variation seed": subseed if p.subseed_strength else None,
        "Variation seed strength": p.subseed_strength or None,
        "Tiling": True if p.tiling else None,
        "ENSD": p.eta_noise_seed_delta or None,
        "Version": f"graycat {__version__}",
    }


def result_body(
    p: GenerationParams, model: dict[str, Any], images: list[Image.Image], skipped: list[int] | None = None
) -> bytes:
    """`{"images": [base64 PNG], "info": "<JSON string>"}`; the api adds the request echo (`parameters`).
    `skipped` iterations (batches) have no images: the seeds of the others are listed."""
    left_out = set(skipped or [])
    indices = [i for i in range(p.batch_size * p.n_iter) if i // p.batch_size not in left_out][: len(images)]
    seeds = [p.seed + i for i in indices]
    subseeds = [p.subseed + i for i in indices]
    texts = [
        infotext.build(p.prompt, p.negative_prompt, _settings(p, model, s, ss))
        for s, ss in zip(seeds, subseeds, strict=True)
    ]
    encoded = (
        [
            codec.encode(
                image,
                text if p.enable_pnginfo else None,
                fmt=p.samples_format,
                quality=p.jpeg_quality,
                lossless=p.webp_lossless,
            )
            for image, text in zip(images, texts, strict=True)
        ]
        if p.send_images
        else []
    )
    info: dict[str, Any] = {
        "prompt": p.prompt,
        "all_prompts": [p.prompt] * len(images),
        "negative_prompt": p.negative_prompt,
        "all_negative_prompts": [p.negative_prompt] * len(images),
        "seed": p.seed,
        "all_seeds": seeds,
        "subseed": p.subseed,
        "all_subseeds": subseeds,
        "subseed_strength": p.subseed_strength,
        "width": p.width,
        "height": p.height,
        "sampler_name": resolve(p.sampler, p.schedule).sampler.name,
        "cfg_scale": p.cfg_scale,
        "steps": p.steps,
        "batch_size": p.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": model.get("model_name"),
        "sd_model_hash": model.get("hash"),
        "sd_vae_name": p.vae,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": p.denoising_strength
        if p.mode == "img2img"
        else p.hires.denoising_strength
        if p.hires
        else 0,
        "extra_generation_params": {},
        "index_of_first_image": 0,
        "infotexts": texts,
        "styles": [],
        "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
        "clip_skip": p.clip_skip,
        "is_using_inpainting_conditioning": False,
        "version": f"graycat {__version__}",
    }
    return orjson.dumps({"images": encoded, "info": orjson.dumps(info).decode()})
