"""The generation job: what the api sends an SD worker after validating an A1111 or OpenAI request."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

import orjson

T = TypeVar("T")


@dataclass(slots=True)
class ControlUnit:
    """One ControlNet unit: its model, the control image (None: the init image), the preprocessor to run on it
    (graycat/images/preprocessors.py) and how strongly it guides."""

    model: str
    image: str | None = None
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    module: str = "none"
    threshold_a: float = 100.0
    threshold_b: float = 200.0


@dataclass(frozen=True, slots=True)
class HiresFix:
    """A1111's hires fix: each txt2img image is upscaled to `width` x `height` and denoised again (img2img).
    An empty sampler, schedule or prompt means the first pass's; 0 steps too."""

    width: int
    height: int
    upscaler: str = "Latent"
    steps: int = 0
    upscale_width: int = 0  # both hr_resize sides given: upscale to cover them (0: width, height), then crop
    upscale_height: int = 0
    denoising_strength: float = 0.75
    sampler: str = ""
    schedule: str = ""
    prompt: str = ""
    negative_prompt: str = ""


@dataclass(frozen=True, slots=True)
class SdUpscale:
    """A1111's "SD upscale" img2img script: the init image upscaled `scale` times with `upscaler` (None,
    Lanczos, Nearest, or an ESRGAN-family model the worker serves), cut into tiles of the job's width x height
    overlapping by `overlap` pixels, each tile denoised by img2img, the tiles blended back together."""

    overlap: int = 64
    upscaler: str = "None"
    scale: float = 2.0


@dataclass(slots=True)
class GenerationParams:
    """Everything a worker needs to run one request; seeds are already chosen (a rerun gives the same images)."""

    checkpoint: str
    prompt: str
    seed: int
    width: int
    height: int
    steps: int
    mode: str = "txt2img"  # or "img2img" (with a mask: inpainting)
    negative_prompt: str = ""
    subseed: int = 0
    subseed_strength: float = 0.0
    sampler: str = "Euler a"
    schedule: str = "automatic"
    cfg_scale: float = 7.0
    batch_size: int = 1
    n_iter: int = 1
    clip_skip: int = 1
    vae: str | None = None  # a file of models/VAE; None: the checkpoint's own
    tiling: bool = False
    eta: float | None = None
    denoising_strength: float = 0.75
    init_images: list[str] = field(default_factory=list)
    mask: str | None = None
    mask_blur: int = 4
    inpainting_fill: int = 1
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: bool = False
    resize_mode: int = 0
    outpaint: list[int] | None = None  # pixels added (left, up, right, down); width and height include them
    controlnets: list[ControlUnit] = field(default_factory=list)
    hires: HiresFix | None = None
    sd_upscale: SdUpscale | None = None
    refiner: str | None = None  # A1111's refiner_checkpoint: a checkpoint that takes txt2img's latents over
    refiner_switch_at: float = 0.8  # at this fraction of the schedule
    send_images: bool = True
    eta_noise_seed_delta: int = 0  # A1111's ENSD: the samplers' own noise is seeded with seed + this
    samples_format: str = "png"  # how the images are encoded (graycat/images/codec.py FORMATS)
    jpeg_quality: int = 80
    webp_lossless: bool = False
    enable_pnginfo: bool = True  # the infotext in each image

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> GenerationParams:
        return cls.from_dict(orjson.loads(data))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GenerationParams:
        values["controlnets"] = [_known(ControlUnit, unit) for unit in values.get("controlnets", [])]
        if values.get("hires"):
            values["hires"] = _known(HiresFix, values["hires"])
        if values.get("sd_upscale"):
            values["sd_upscale"] = _known(SdUpscale, values["sd_upscale"])
        return _known(cls, values)


def _known(kind: type[T], values: dict[str, Any]) -> T:
    """`kind` from the fields it has: a job written by a newer api still runs on an older worker."""
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**{k: v for k, v in values.items() if k in names})
