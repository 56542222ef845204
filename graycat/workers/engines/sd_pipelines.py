"""Stable Diffusion on diffusers: load a checkpoint of the models folder, run one generation (blocking).

Runs in the engine's worker thread; `progress` is called after each denoising step and `stop` is checked
there, so a cancelled job ends within one step.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from graycat.images import codec, extras, families, loras, preprocessors, tiles, upscalers
from graycat.images.checkpoints import Checkpoint
from graycat.images.families import Family
from graycat.images.params import ControlUnit, GenerationParams, HiresFix, SdUpscale
from graycat.images.samplers import resolve
from graycat.workers.engines.sd_config import write_skeleton, write_vae_config

Progress = Callable[[int, int, int, Image.Image | None], None]
"""(iteration index, step done, steps of this iteration, a preview of the first image or None)."""

# the 4 latent channels of SD 1.x/2.x and of SDXL -> RGB, linearly (A1111's "Approx cheap" live preview)
_LATENT_RGB = {
    "sd": torch.tensor(
        [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
    ),
    "sdxl": torch.tensor(
        [[0.3448, 0.4168, 0.4395], [-0.1953, -0.0290, 0.0250], [0.1074, 0.0886, -0.0163], [-0.3730, -0.2499, -0.2088]]
    ),
}
# the diffusers pipeline of each kind of generation, per latent space: plain, and with ControlNet
_PIPELINES = {
    ("sd", "txt2img"): ("StableDiffusionPipeline", "StableDiffusionControlNetPipeline"),
    ("sd", "img2img"): ("StableDiffusionImg2ImgPipeline", "StableDiffusionControlNetImg2ImgPipeline"),
    ("sd", "inpaint"): ("StableDiffusionInpaintPipeline", "StableDiffusionControlNetInpaintPipeline"),
    ("sdxl", "txt2img"): ("StableDiffusionXLPipeline", "StableDiffusionXLControlNetPipeline"),
    ("sdxl", "img2img"): ("StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLControlNetImg2ImgPipeline"),
    ("sdxl", "inpaint"): ("StableDiffusionXLInpaintPipeline", "StableDiffusionXLControlNetInpaintPipeline"),
}


class Interrupted(Exception):
    """The job was cancelled between two steps."""


class _Skipped(Exception):
    """The current iteration was skipped between two steps."""


class Skip:
    """A running job's skip requests (A1111's /sdapi/v1/skip): each ends the iteration (one batch) being
    generated at its next step, without images; the next iterations run."""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self.skipped: list[int] = []  # the iterations left out

    def request(self) -> None:
        self._requested.set()

    def check(self) -> None:
        if self._requested.is_set():
            self._requested.clear()
            raise _Skipped


@dataclass(frozen=True, slots=True)
class Device:
    """Where and how pipelines run."""

    name: str = "cpu"
    dtype: torch.dtype = torch.float32
    attention_slicing: bool = False
    vae_tiling: bool = False


def family_of(pipe: Any) -> Family:
    """The family of a loaded pipeline (set by `load`; SD 1.x for pipelines made otherwise)."""
    return cast(Family, getattr(pipe, "graycat_family", Family("sd1")))


def load(checkpoint: Checkpoint, device: Device, scratch: Path) -> Any:
    """The pipeline of a checkpoint's family (StableDiffusionPipeline for SD 1.x and 2.x, StableDiffusionXLPipeline
    for SDXL, StableDiffusionXLImg2ImgPipeline for its refiner) from a diffusers folder or a single file,
    offline; a single file's configs are written under `scratch`."""
    import diffusers

    family = families.parse(checkpoint.family or "sd1")
    common: dict[str, Any] = {"dtype": device.dtype, "local_files_only": True}
    cls: Any
    if family.base == "sdxl-refiner":
        cls = diffusers.StableDiffusionXLImg2ImgPipeline
    elif family.base == "sdxl":
        cls = diffusers.StableDiffusionXLPipeline
    else:
        cls = diffusers.StableDiffusionPipeline
        common.update(safety_checker=None, requires_safety_checker=False)
    if checkpoint.path.is_dir():
        pipe = cls.from_pretrained(checkpoint.path, **common)
    else:
        config = write_skeleton(checkpoint.path, scratch / checkpoint.model_name, family)
        pipe = cls.from_single_file(str(checkpoint.path), config=str(config), **common)
    pipe.graycat_family = family
    pipe = pipe.to(device.name)
    pipe.set_progress_bar_config(disable=True)
    pipe.graycat_scheduler_config = pipe.scheduler.config  # each job's scheduler starts from the checkpoint's
    if device.attention_slicing:
        pipe.enable_attention_slicing()
    if device.vae_tiling:
        pipe.vae.enable_tiling()
    return pipe


def load_vae(path: Path, device: Device, scratch: Path, scaling: float) -> Any:
    """An AutoencoderKL from a standalone VAE file, offline, for latents scaled by `scaling` (the checkpoint's)."""
    from diffusers import AutoencoderKL

    config = write_vae_config(path, scratch / f"vae-{path.stem}-{scaling}", scaling)
    return AutoencoderKL.from_single_file(str(path), config=str(config), local_files_only=True, dtype=device.dtype).to(
        device.name
    )


@contextmanager
def vae_applied(pipe: Any, vae: Any | None) -> Iterator[None]:
    """The pipeline decodes (and encodes) with `vae` for one job, then with its own again."""
    if vae is None:
        yield
        return
    own = pipe.vae
    pipe.vae = vae
    try:
        yield
    finally:
        pipe.vae = own


@contextmanager
def loras_applied(pipe: Any, loras: list[tuple[Path, float]]) -> Iterator[None]:
    """The LoRAs loaded and weighted for one job, then unloaded (which restores the base weights exactly)."""
    if not loras:
        yield
        return
    names = [f"graycat_lora_{i}" for i in range(len(loras))]  # never an nn.Module attribute name
    try:
        for name, (path, _) in zip(names, loras, strict=True):
            pipe.load_lora_weights(str(path), adapter_name=name)
        pipe.set_adapters(names, [weight for _, weight in loras])
        yield
    finally:
        pipe.unload_lora_weights()


def _scheduler(pipe: Any, params: GenerationParams, seed: int) -> Any:
    import diffusers

    choice = resolve(params.sampler, params.schedule)
    cls = getattr(diffusers, choice.sampler.scheduler_class)
    kwargs = choice.scheduler_kwargs()
    if choice.sampler.scheduler_class == "DPMSolverSDEScheduler":
        kwargs["noise_sampler_seed"] = seed + params.eta_noise_seed_delta  # it ignores the generator
    return cls.from_config(getattr(pipe, "graycat_scheduler_config", pipe.scheduler.config), **kwargs)


def _resize(image: Image.Image, width: int, height: int, mode: int) -> Image.Image:
    """A1111's resize modes: 0 stretch, 1 crop to fill, 2 fit and fill the rest with the stretched edges,
    3 (latent upscale) as 0."""
    if mode == 1:
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    if mode == 2:
        fitted = ImageOps.contain(image, (width, height), Image.Resampling.LANCZOS)
        canvas = image.resize((width, height), Image.Resampling.LANCZOS).filter(ImageFilter.GaussianBlur(8))
        canvas.paste(fitted, ((width - fitted.width) // 2, (height - fitted.height) // 2))
        return canvas
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _fill(image: Image.Image, mask: Image.Image, how: int, seed: int) -> Image.Image:
    """What the masked area starts from (A1111's inpainting_fill): 0 its surroundings blurred in, 1 the
    original, 2 noise, 3 nothing (mid grey)."""
    if how == 1:
        return image
    if how == 0:
        filler = image.filter(ImageFilter.GaussianBlur(max(image.size) / 8))
    elif how == 2:
        noise = np.random.default_rng(seed).integers(0, 256, (image.height, image.width, 3), dtype=np.uint8)
        filler = Image.fromarray(noise)
    else:
        filler = Image.new("RGB", image.size, (127, 127, 127))
    return Image.composite(filler, image, mask.point(lambda v: 255 if v > 127 else 0))


def _crop_box(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The masked area plus padding, grown to the output's aspect ratio and kept inside the image."""
    box = mask.point(lambda v: 255 if v > 127 else 0).getbbox() or (0, 0, mask.width, mask.height)
    left, top = max(box[0] - padding, 0), max(box[1] - padding, 0)
    right, bottom = min(box[2] + padding, mask.width), min(box[3] + padding, mask.height)
    w, h = right - left, bottom - top
    if w / h < width / height:
        grow = round(h * width / height) - w
        left, right = left - grow // 2, right + grow - grow // 2
    else:
        grow = round(w * height / width) - h
        top, bottom = top - grow // 2, bottom + grow - grow // 2
    if left < 0:
        left, right = 0, right - left
    if top < 0:
        top, bottom = 0, bottom - top
    return max(left, 0), max(top, 0), min(right, mask.width), min(bottom, mask.height)


def _outpaint_canvas(image: Image.Image, sides: list[int], blur: int) -> tuple[Image.Image, Image.Image]:
    """The image on a canvas grown by (left, up, right, down) pixels, the new border filled with the image's
    stretched and blurred edges, and the mask of what to paint: the border, reaching `blur` pixels into the
    image so that the seam is repainted too."""
    left, up, right, down = sides
    size = (image.width + left + right, image.height + up + down)
    canvas = image.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(max(size) / 16))
    canvas.paste(image, (left, up))
    mask = Image.new("L", size, 255)
    keep = (
        left + blur if left else 0,
        up + blur if up else 0,
        left + image.width - (blur if right else 0),
        up + image.height - (blur if down else 0),
    )
    mask.paste(0, keep)
    return canvas, mask


def _noise(seeds: list[int], subseeds: list[int], strength: float, shape: tuple[int, ...]) -> torch.Tensor:
    """Initial latents, one per seed; with a subseed strength, each is moved towards its subseed's noise
    (spherical interpolation, as A1111's variation seeds)."""
    out = []
    for seed, subseed in zip(seeds, subseeds, strict=True):
        noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
        if strength > 0:
            other = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(subseed))
            a, b = noise.flatten(), other.flatten()
            omega = torch.acos((a / a.norm() * (b / b.norm())).sum().clamp(-1, 1))
            if omega.abs() > 1e-4:
                noise = (torch.sin((1 - strength) * omega) * noise + torch.sin(strength * omega) * other) / torch.sin(
                    omega
                )
        out.append(noise)
    return torch.stack(out)


def _generators(seeds: list[int], delta: int) -> list[torch.Generator]:
    """The pipeline's generators: the samplers' own noise (ancestral and SDE steps; in img2img also the noise the
    pipeline adds to the image) comes from seed + A1111's eta_noise_seed_delta; txt2img's starting noise does
    not (see _noise)."""
    return [torch.Generator("cpu").manual_seed(s + delta) for s in seeds]


def _set_tiling(pipe: Any, tiling: bool) -> None:
    for model in (pipe.unet, pipe.vae):
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.padding_mode = "circular" if tiling else "zeros"


def latent_preview(latents: torch.Tensor, space: str) -> Image.Image:
    """A cheap look at the first image of a batch while it is made: its latent projected to RGB (with the map
    of its latent `space`), at 1/8 of the image's width and height."""
    rgb = latents[0].detach().float().cpu().permute(1, 2, 0) @ _LATENT_RGB[space]
    return Image.fromarray(((rgb + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy())


@dataclass
class _Inputs:
    """What a request paints from: its image (`init`, None for txt2img), the mask and its blurred form (None
    unless part or, on an inpainting model, all of the image is painted), the ControlNet images and the crop box
    of an "only masked" inpainting."""

    init: Image.Image | None
    mask: Image.Image | None
    soft_mask: Image.Image | None
    control_images: list[Image.Image | None]
    crop: tuple[int, int, int, int] | None
    masked: bool  # the request paints part of its image


def _inputs(pipe: Any, p: GenerationParams) -> _Inputs:
    w, h = p.width, p.height
    init = None
    if p.init_images:
        left, up, right, down = p.outpaint or (0, 0, 0, 0)
        inner = (w - left - right, h - up - down)
        init = _resize(codec.decode(p.init_images[0]).convert("RGB"), *inner, p.resize_mode)
    mask = None
    if p.outpaint and init is not None:
        init, mask = _outpaint_canvas(init, p.outpaint, p.mask_blur)
    elif p.mask:
        mask = _resize(codec.decode(p.mask).convert("L"), w, h, p.resize_mode)
        if p.inpainting_mask_invert:
            mask = ImageOps.invert(mask)
    elif pipe.unet.config.in_channels == 9:  # an inpainting model paints everything: txt2img from grey, img2img
        mask = Image.new("L", (w, h), 255)
    if init is None and mask is not None:
        init = Image.new("RGB", (w, h), (127, 127, 127))
    soft_mask = mask.filter(ImageFilter.GaussianBlur(p.mask_blur)) if mask is not None and p.mask_blur else mask
    crop = (
        _crop_box(mask, p.inpaint_full_res_padding, w, h)
        if mask is not None and p.mask and p.inpaint_full_res
        else None
    )
    control_images = [_control_image(u, init, w, h, p.resize_mode) for u in p.controlnets]
    return _Inputs(init, mask, soft_mask, control_images, crop, bool(p.mask or p.outpaint))


def generate(
    pipe: Any,
    params: GenerationParams,
    progress: Progress,
    stop: threading.Event,
    control_models: list[Any] | None = None,
    skip: Skip | None = None,
    preview_every: int = 0,
    refiner: Any = None,
    upscale_models: extras.Models | None = None,
) -> list[Image.Image]:
    """All `batch_size * n_iter` images of a request, but those of iterations `skip` ended (listed in
    `skip.skipped`); image i has seed `params.seed + i`. `control_models` are the ControlNet models of
    `params.controlnets`, in order. Every `preview_every` steps (0: never) `progress` gets a preview.
    `refiner` (the pipeline of `params.refiner`) takes the latents of txt2img or plain img2img over at
    `params.refiner_switch_at`. `upscale_models` gives the ESRGAN-family upscalers the hires fix or SD upscale
    names."""
    p = params
    space = family_of(pipe).latent_space
    if p.sd_upscale is not None:
        return _sd_upscale(pipe, p, p.sd_upscale, progress, stop, skip, preview_every, upscale_models)
    inputs = _inputs(pipe, p)
    control = _controlnet(control_models)
    common: dict[str, Any] = {
        "prompt": p.prompt,
        "negative_prompt": p.negative_prompt or None,
        "num_inference_steps": p.steps,
        "guidance_scale": p.cfg_scale,
        "num_images_per_prompt": p.batch_size,
        "output_type": "pil",
        "clip_skip": p.clip_skip - 1 if p.clip_skip > 1 else None,
    }
    if p.eta is not None:
        common["eta"] = p.eta
    _set_tiling(pipe, p.tiling)
    images: list[Image.Image] = []
    second_pass = _second_pass_steps(p)  # counted in the progress of the first
    try:
        for k in range(p.n_iter):
            first = p.seed + k * p.batch_size
            seeds = list(range(first, first + p.batch_size))
            subseeds = list(range(p.subseed + k * p.batch_size, p.subseed + (k + 1) * p.batch_size))

            def on_step(
                _pipe: Any,
                step: int,
                _t: Any,
                kwargs: dict[str, Any],
                k: int = k,
                done: int = 0,
                after: int = second_pass,
                floor: int = 0,
            ) -> dict[str, Any]:
                """After each step; `done`: the steps of earlier passes (the hires fix's first, the base's before
                the refiner), `after`: those of later ones known now, `floor`: the least this pass and those
                before it make (the base's share of the steps is only known once the refiner has run)."""
                if stop.is_set():
                    raise Interrupted
                if skip is not None:
                    skip.check()
                preview = (
                    latent_preview(kwargs["latents"], space)
                    if preview_every and (step + 1) % preview_every == 0
                    else None
                )
                steps = max(done + int(_pipe.num_timesteps), floor)
                progress(k, done + step + 1, steps + after, preview)
                return kwargs

            pipe.scheduler = _scheduler(pipe, p, seeds[0])
            run = {**common, "generator": _generators(seeds, p.eta_noise_seed_delta), "callback_on_step_end": on_step}
            try:
                out = _first_pass(pipe, p, inputs, seeds, subseeds, run, on_step, control, refiner)
                if p.hires is not None and p.mode == "txt2img":
                    out = _hires_pass(
                        pipe,
                        p,
                        p.hires,
                        out,
                        seeds,
                        upscale_models,
                        {**run, "callback_on_step_end": functools.partial(on_step, done=p.steps, after=0)},
                    )
            except _Skipped:
                skip.skipped.append(k)  # type: ignore[union-attr]  # only raised with a Skip
                continue
            images.extend(out)
    finally:
        _set_tiling(pipe, False)
    return images


def _first_pass(
    pipe: Any,
    p: GenerationParams,
    inputs: _Inputs,
    seeds: list[int],
    subseeds: list[int],
    run: dict[str, Any],
    on_step: Callable[..., dict[str, Any]],
    control: Any,
    refiner: Any,
) -> list[Image.Image]:
    """One iteration's images before any hires fix: inpainting where a mask is, else img2img from the image,
    else txt2img from the seeds' noise; through the refiner when one takes over."""
    w, h = p.width, p.height
    init, soft_mask, control_images = inputs.init, inputs.soft_mask, inputs.control_images
    if inputs.mask is not None and init is not None:
        assert soft_mask is not None  # set whenever the mask is
        source, region = init, soft_mask
        controls = cast(list[Image.Image], control_images)  # images wherever init is one
        if inputs.crop is not None:
            source, region, *controls = (
                i.crop(inputs.crop).resize((w, h), Image.Resampling.LANCZOS) for i in (init, soft_mask, *controls)
            )
        start = _fill(source, region, p.inpainting_fill if inputs.masked else 1, seeds[0])
        strength = _strength(p.steps, p.denoising_strength) if inputs.masked or p.init_images else 1.0
        out = _runner(pipe, "inpaint", control)(
            image=start,
            mask_image=region,
            strength=strength,
            width=w,
            height=h,
            **run,
            **_control_args(p, controls, "control_image"),
        ).images
        return [_paste(init, soft_mask, o, inputs.crop) for o in out] if inputs.masked else list(out)
    if init is not None and refiner is not None:
        return _refined(
            _runner(pipe, "img2img", None),
            refiner,
            p,
            seeds,
            {**run, "image": init, "strength": _strength(p.steps, p.denoising_strength)},
            functools.partial(on_step, floor=_img2img_steps(p.steps, p.denoising_strength)),
            lambda base: functools.partial(on_step, done=base),
        )
    if init is not None:
        return list(
            _runner(pipe, "img2img", control)(
                image=init,
                strength=_strength(p.steps, p.denoising_strength),
                **run,
                **_control_args(p, control_images, "control_image"),
            ).images
        )
    shape = (pipe.unet.config.in_channels, h // 8, w // 8)
    latents = _noise(seeds, subseeds, p.subseed_strength, shape).to(pipe.device, pipe.unet.dtype)
    runner = _runner(pipe, "txt2img", control)
    if refiner is None:
        return list(
            runner(width=w, height=h, latents=latents, **run, **_control_args(p, control_images, "image")).images
        )
    return _refined(
        runner,
        refiner,
        p,
        seeds,
        {**run, "width": w, "height": h, "latents": latents},
        functools.partial(on_step, floor=p.steps),
        lambda base: functools.partial(on_step, done=base),
    )


def _sd_upscale(
    pipe: Any,
    p: GenerationParams,
    up: SdUpscale,
    progress: Progress,
    stop: threading.Event,
    skip: Skip | None,
    preview_every: int,
    upscale_models: extras.Models | None = None,
) -> list[Image.Image]:
    """A1111's "SD upscale": the init image upscaled, cut into tiles of the job's size, each tile redrawn by
    img2img, the tiles blended back; one image per iteration (n_iter). Tile k of iteration n has seed
    seed + n + k // batch_size + k % batch_size, as A1111 seeds them batch by batch. Progress counts the steps of
    all the tiles of an iteration."""
    space = family_of(pipe).latent_space
    init = extras.resized(codec.decode(p.init_images[0]).convert("RGB"), up.upscaler, up.scale, upscale_models)
    xs, ys = tiles.sd_upscale_tiles(init.size, p.width, p.height, up.overlap)
    pieces = tiles.cut(init, xs, ys, p.width, p.height)
    flat = [piece for row in pieces for piece in row]
    common: dict[str, Any] = {
        "prompt": p.prompt,
        "negative_prompt": p.negative_prompt or None,
        "num_inference_steps": p.steps,
        "guidance_scale": p.cfg_scale,
        "output_type": "pil",
        "clip_skip": p.clip_skip - 1 if p.clip_skip > 1 else None,
        "strength": _strength(p.steps, p.denoising_strength),
    }
    if p.eta is not None:
        common["eta"] = p.eta
    if pipe.unet.config.in_channels == 9:  # an inpainting model: img2img as inpainting everything
        runner = _runner(pipe, "inpaint", None)
        common.update(mask_image=Image.new("L", (p.width, p.height), 255), width=p.width, height=p.height)
    else:
        runner = _runner(pipe, "img2img", None)
    per_tile = _img2img_steps(p.steps, p.denoising_strength)
    images: list[Image.Image] = []
    for n in range(p.n_iter):
        done: list[Image.Image] = []
        try:
            for k, piece in enumerate(flat):
                seed = p.seed + n + k // p.batch_size + k % p.batch_size

                def on_step(
                    _pipe: Any, step: int, _t: Any, kwargs: dict[str, Any], n: int = n, before: int = k * per_tile
                ) -> dict[str, Any]:
                    if stop.is_set():
                        raise Interrupted
                    if skip is not None:
                        skip.check()
                    preview = (
                        latent_preview(kwargs["latents"], space)
                        if preview_every and (step + 1) % preview_every == 0
                        else None
                    )
                    progress(n, before + step + 1, per_tile * len(flat), preview)
                    return kwargs

                pipe.scheduler = _scheduler(pipe, p, seed)
                done.extend(
                    runner(
                        image=piece,
                        generator=_generators([seed], p.eta_noise_seed_delta),
                        callback_on_step_end=on_step,
                        **common,
                    ).images
                )
        except _Skipped:
            skip.skipped.append(n)  # type: ignore[union-attr]  # only raised with a Skip
            continue
        rows = [done[r * len(xs) : (r + 1) * len(xs)] for r in range(len(ys))]
        images.append(tiles.combine(rows, xs, ys, init.size, up.overlap))
    return images


def _refined(
    base: Any,
    refiner: Any,
    p: GenerationParams,
    seeds: list[int],
    run: dict[str, Any],
    on_base_step: Callable[..., dict[str, Any]],
    on_refiner_step: Callable[[int], Callable[..., dict[str, Any]]],
) -> list[Image.Image]:
    """txt2img or img2img with A1111's refiner: the base denoises the first `refiner_switch_at` of the schedule
    and hands its latents to the refiner, which denoises the rest (on the same sampler and seeds)."""
    latents = base(
        **{**run, "output_type": "latent", "callback_on_step_end": on_base_step}, denoising_end=p.refiner_switch_at
    ).images
    done = int(base.num_timesteps)
    refiner.scheduler = _scheduler(refiner, p, seeds[0])
    second = {k: v for k, v in run.items() if k not in ("width", "height", "latents", "clip_skip", "image", "strength")}
    second.update(
        generator=_generators(seeds, p.eta_noise_seed_delta),
        callback_on_step_end=on_refiner_step(done),
        num_images_per_prompt=1,
        prompt=[p.prompt] * len(latents),
        negative_prompt=[p.negative_prompt] * len(latents) if p.negative_prompt else None,
    )
    return list(_runner(refiner, "img2img", None)(image=latents, denoising_start=p.refiner_switch_at, **second).images)


def _strength(steps: int, strength: float) -> float:
    """img2img's strength for diffusers, raised to one step's where steps x strength is under one: diffusers
    refuses to run no step (a 502 for e.g. 3 steps at 0.3), A1111 runs one."""
    return strength if int(steps * strength) >= 1 else min(1.0, (1 + 1e-6) / steps)


def _img2img_steps(steps: int, strength: float) -> int:
    """The denoising steps img2img runs: steps x strength of them, at least one."""
    return max(1, min(int(steps * strength), steps))


def _second_pass_steps(p: GenerationParams) -> int:
    """The denoising steps the hires fix's second pass runs (img2img runs steps x strength of them)."""
    if p.hires is None or p.hires.denoising_strength <= 0:
        return 0
    return _img2img_steps(p.hires.steps or p.steps, p.hires.denoising_strength)


def _hires_pass(
    pipe: Any,
    p: GenerationParams,
    hires: HiresFix,
    images: list[Image.Image],
    seeds: list[int],
    upscale_models: extras.Models | None,
    run: dict[str, Any],
) -> list[Image.Image]:
    """The hires fix's second pass: each image upscaled (to cover the hires size, then centre-cropped to it; an
    ESRGAN-family `hires.upscaler` from `upscale_models`), then denoised again (img2img) with its own seed, on the
    hires sampler and prompts where they are given."""
    model = None
    if hires.upscaler not in upscalers.UPSCALERS and upscale_models is not None:
        model = upscale_models(hires.upscaler)
    big = [
        ImageOps.fit(
            upscalers.upscale(
                image, hires.upscaler, hires.upscale_width or hires.width, hires.upscale_height or hires.height, model
            ),
            (hires.width, hires.height),
        )
        for image in images
    ]
    if hires.denoising_strength <= 0:
        return big
    pipe.scheduler = _scheduler(
        pipe, replace(p, sampler=hires.sampler or p.sampler, schedule=hires.schedule or p.schedule), seeds[0]
    )
    negative = hires.negative_prompt or p.negative_prompt
    second = {
        **run,
        "prompt": [loras.parse(hires.prompt or p.prompt)[0]] * len(big),
        "negative_prompt": [negative] * len(big) if negative else None,
        "generator": _generators(seeds, p.eta_noise_seed_delta),
        "num_inference_steps": hires.steps or p.steps,
        "num_images_per_prompt": 1,
    }
    if pipe.unet.config.in_channels == 9:  # an inpainting model: img2img as inpainting everything
        runner = _runner(pipe, "inpaint", None)
        second.update(
            mask_image=Image.new("L", (hires.width, hires.height), 255), width=hires.width, height=hires.height
        )
    else:
        runner = _runner(pipe, "img2img", None)
    strength = _strength(hires.steps or p.steps, hires.denoising_strength)
    return list(runner(image=big, strength=strength, **second).images)


def _control_image(unit: ControlUnit, init: Image.Image | None, w: int, h: int, resize_mode: int) -> Image.Image | None:
    """A unit's control image (its own, else the init image) at the job's size, through its preprocessor."""
    image = _resize(codec.decode(unit.image).convert("RGB"), w, h, resize_mode) if unit.image else init
    return None if image is None else preprocessors.run(unit.module, image, unit.threshold_a, unit.threshold_b)


def _controlnet(models: list[Any] | None) -> Any:
    if not models:
        return None
    if len(models) == 1:
        return models[0]
    from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

    return MultiControlNetModel(models)


def _runner(pipe: Any, kind: str, control: Any) -> Any:
    """The pipeline of one kind of generation (txt2img, img2img, inpaint) for the loaded checkpoint's family,
    on its components (`pipe` itself when it is that pipeline); its ControlNet variant with `control`."""
    import diffusers

    family = family_of(pipe)
    plain, with_control = _PIPELINES[(family.latent_space, kind)]
    if control is None and type(pipe).__name__ == plain:
        return pipe
    extra: dict[str, Any] = {}
    if family.latent_space == "sdxl" and kind != "txt2img":  # SDXL's refiner is conditioned on an aesthetic score
        extra["requires_aesthetics_score"] = bool(pipe.config.get("requires_aesthetics_score", False))
    if control is None:
        return getattr(diffusers, plain)(**pipe.components, **extra)
    return getattr(diffusers, with_control)(**pipe.components, controlnet=control, **extra)


def _control_args(p: GenerationParams, images: list[Any], image_arg: str) -> dict[str, Any]:
    """The ControlNet arguments of a pipeline call (one unit: plain values; several: lists)."""
    if not p.controlnets:
        return {}
    units = p.controlnets
    if len(units) == 1:
        return {
            image_arg: images[0],
            "controlnet_conditioning_scale": units[0].weight,
            "control_guidance_start": units[0].guidance_start,
            "control_guidance_end": units[0].guidance_end,
        }
    return {
        image_arg: images,
        "controlnet_conditioning_scale": [u.weight for u in units],
        "control_guidance_start": [u.guidance_start for u in units],
        "control_guidance_end": [u.guidance_end for u in units],
    }


def load_controlnet(folder: Path, device: Device) -> Any:
    """A ControlNetModel from a diffusers-format folder, offline."""
    from diffusers import ControlNetModel

    return ControlNetModel.from_pretrained(folder, local_files_only=True, dtype=device.dtype).to(device.name)


def _paste(
    original: Image.Image, mask: Image.Image, result: Image.Image, crop: tuple[int, int, int, int] | None
) -> Image.Image:
    """Keep the unmasked pixels of the original exactly; put the generated ones where the mask is."""
    if crop is not None:
        canvas = original.copy()
        canvas.paste(result.resize((crop[2] - crop[0], crop[3] - crop[1]), Image.Resampling.LANCZOS), crop[:2])
        result = canvas
    return Image.composite(result.convert("RGB"), original, mask)
