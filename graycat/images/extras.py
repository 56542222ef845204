"""A1111's "Extras" upscaling (`/sdapi/v1/extra-single-image`, `extra-batch-images`), sized as A1111 sizes it:
with the upscalers that need no model (Lanczos, Nearest; pure PIL, the api runs it in a thread) and, on an SD
worker, with the ESRGAN-family models of its folder (`ModelUpscaler`, graycat/workers/engines/esrgan.py)."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from PIL import Image

from graycat.images import codec

FILTERS = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}
NONE = "None"
# A1111's upscalers that run a neural network: their weights are not loaded here
MODEL_UPSCALERS = ("ESRGAN", "R-ESRGAN", "RealESRGAN", "SwinIR", "ScuNET", "LDSR", "DAT", "HAT", "4x", "2x")
MAX_PIXELS = 4096 * 4096  # largest image taken or made


class NotRun(ValueError):
    """An upscaler this server does not run; `model` tells whether it is one that needs weights."""

    def __init__(self, name: str, model: bool) -> None:
        super().__init__(name)
        self.name, self.model = name, model


class TooLarge(ValueError):
    """The image, or what the request would make of it, is over MAX_PIXELS."""


def upscaler(name: str | None, models: list[str] | tuple[str, ...] = ()) -> str:
    """The upscaler `name` means (case-insensitive): None, Lanczos, Nearest or one of the model upscalers
    `models` (the names SD workers announce); NotRun otherwise."""
    wanted = (name or NONE).strip()
    for known in (NONE, *FILTERS, *models):
        if known.lower() == wanted.lower():
            return known
    raise NotRun(wanted, is_model_upscaler(wanted))


@dataclass(frozen=True, slots=True)
class ModelUpscaler:
    """A loaded model upscaler: `run` makes an image `scale` times larger (one pass of the model)."""

    scale: int
    run: Callable[[Image.Image], Image.Image]


Models = Callable[[str], ModelUpscaler]
"""A model upscaler by name (loaded on first use by the SD worker)."""


def model_resized(image: Image.Image, dest: tuple[int, int], model: ModelUpscaler) -> Image.Image:
    """As A1111 runs a model upscaler: passes of the model (at most 3; one for a x1 model) until the image
    covers `dest`, then Lanczos to `dest`. A pass that would make an image over MAX_PIXELS is not run (Lanczos
    does the rest), so no request makes the model work on more than an output's worth of pixels."""
    for _ in range(1 if model.scale == 1 else 3):
        if image.width >= dest[0] and image.height >= dest[1] and model.scale > 1:
            break
        if image.width * image.height * model.scale**2 > MAX_PIXELS:
            break
        image = model.run(image)
    return image if image.size == dest else image.resize(dest, Image.Resampling.LANCZOS)


def is_model_upscaler(name: str) -> bool:
    """Whether `name` looks like one of A1111's upscalers that run a model (ESRGAN and its kin)."""
    return any(part.lower() in name.lower() for part in MODEL_UPSCALERS)


@dataclass(frozen=True, slots=True)
class Upscale:
    """One extras request's upscaling, its names already checked (`upscaler`)."""

    resize_mode: int = 0  # 0: by `scale`; 1: to `width` x `height`
    scale: float = 2.0
    width: int = 512
    height: int = 512
    crop: bool = True  # with resize_mode 1: centre the result on a width x height canvas
    upscaler_1: str = NONE
    upscaler_2: str = NONE
    visibility_2: float = 0.0

    def factor(self, size: tuple[int, int]) -> float:
        if self.resize_mode == 1:
            return max(self.width / size[0], self.height / size[1])
        return self.scale

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size the image comes out at; TooLarge when it, or the upscaled image before a crop, is over
        MAX_PIXELS, ValueError when a side comes to under 8 pixels."""
        if self.upscaler_1 == NONE:
            return size
        factor = self.factor(size)
        sizes = [(int(size[0] * factor) // 8 * 8, int(size[1] * factor) // 8 * 8)]
        if self.resize_mode == 1 and self.crop:
            sizes.append((self.width, self.height))
        for w, h in sizes:
            if w * h > MAX_PIXELS:
                raise TooLarge(f"upscaling to {w}x{h} is over the {MAX_PIXELS:,} pixels an image may have here")
            if min(w, h) < 8:
                raise ValueError(f"upscaling gives a {w}x{h} image: each side must come to 8 pixels or more")
        return sizes[-1]


def resized(image: Image.Image, name: str, factor: float, models: Models | None = None) -> Image.Image:
    """A1111's upscale: to `factor` times the size with a filter, then Lanczos to the size rounded down to a
    multiple of 8 where they differ; with a model upscaler (`models` gives it) straight to that size; the None
    upscaler leaves the image as it is."""
    if name == NONE:
        return image
    dest = (int(image.width * factor) // 8 * 8, int(image.height * factor) // 8 * 8)
    if name not in FILTERS:
        if models is None:
            raise NotRun(name, True)
        return model_resized(image, dest, models(name))
    out = image.resize((int(image.width * factor), int(image.height * factor)), FILTERS[name])
    return out if out.size == dest else out.resize(dest, Image.Resampling.LANCZOS)


def uses_models(up: Upscale) -> list[str]:
    """The model upscalers an upscaling runs (they run on an SD worker)."""
    names = [up.upscaler_1] if up.upscaler_1 != NONE else []
    if up.upscaler_1 != NONE and up.upscaler_2 != NONE and up.visibility_2 > 0:
        names.append(up.upscaler_2)
    return [n for n in names if n not in FILTERS]


def run(image: Image.Image, up: Upscale, models: Models | None = None) -> tuple[Image.Image, str]:
    """The upscaled image (RGB) and A1111's postprocessing infotext of it; `models` gives the model upscalers
    (None: only filters may be named)."""
    image = image.convert("RGB")
    if up.upscaler_1 == NONE:
        return image, ""
    info: dict[str, str] = {}
    if up.resize_mode == 1:
        info["Postprocess upscale to"] = f"{up.width}x{up.height}"
    else:
        info["Postprocess upscale by"] = f"{up.scale:g}"
    factor = up.factor(image.size)
    out = resized(image, up.upscaler_1, factor, models)
    info["Postprocess upscaler"] = up.upscaler_1
    if up.upscaler_2 != NONE and up.visibility_2 > 0:
        out = Image.blend(out, resized(image, up.upscaler_2, factor, models), up.visibility_2)
        info["Postprocess upscaler 2"] = up.upscaler_2
    if up.resize_mode == 1 and up.crop:
        canvas = Image.new("RGB", (up.width, up.height))
        canvas.paste(out, (up.width // 2 - out.width // 2, up.height // 2 - out.height // 2))
        out = canvas
        info["Postprocess crop to"] = f"{out.width}x{out.height}"
    return out, ", ".join(f"{k}: {v}" for k, v in info.items())


def html_info(text: str) -> str:
    """A1111's `html_info`: the infotext as an HTML paragraph."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"


def encode(image: Image.Image, out: Image.Image, info: str, output: dict[str, Any]) -> str:
    """The upscaled image `out` of `image` in the token's format (`output`: samples_format, jpeg_quality,
    webp_lossless, enable_pnginfo), with the input's text chunks and the postprocessing infotext."""
    keep = output["enable_pnginfo"]
    texts = {str(k): str(v) for k, v in image.info.items() if isinstance(v, str)} if keep else {}
    if info and keep:
        texts["postprocessing"] = info
    if output["samples_format"] == "png":
        return codec.encode_png(out, texts=texts)
    return codec.encode(
        out,
        texts.get("parameters"),
        fmt=output["samples_format"],
        quality=output["jpeg_quality"],
        lossless=output["webp_lossless"],
    )


@dataclass(slots=True)
class ExtrasJob:
    """An extras request that runs a model upscaler: sent to an SD worker serving it. `images` are the request's
    base64 images, already checked by the api; `output` the token's image encoding."""

    upscale: Upscale
    images: list[str]
    output: dict[str, Any] = field(default_factory=dict)

    MODE = "extras"  # the job body's `mode`, which tells it from a generation

    def to_json(self) -> bytes:
        return orjson.dumps({"mode": self.MODE, **asdict(self)})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExtrasJob:
        return cls(Upscale(**values["upscale"]), list(values["images"]), dict(values["output"]))


def run_job(job: ExtrasJob, models: Models) -> bytes:
    """The worker's answer to an extras job: `{"images": [...], "info": <the last image's infotext>}`."""
    images, info = [], ""
    for data in job.images:
        image = codec.decode(data, MAX_PIXELS)
        out, info = run(image, job.upscale, models)
        images.append(encode(image, out, info, job.output))
    return orjson.dumps({"images": images, "info": info})
