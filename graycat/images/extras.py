"""A1111's "Extras" upscaling (`/sdapi/v1/extra-single-image`, `extra-batch-images`) with the upscalers that need
no model (Lanczos, Nearest), sized as A1111 sizes it. Pure PIL: the api runs it in a thread."""

from __future__ import annotations

import html
from dataclasses import dataclass

from PIL import Image

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


def upscaler(name: str | None) -> str:
    """The upscaler `name` means (case-insensitive): None, Lanczos or Nearest; NotRun otherwise."""
    wanted = (name or NONE).strip()
    for known in (NONE, *FILTERS):
        if known.lower() == wanted.lower():
            return known
    raise NotRun(wanted, is_model_upscaler(wanted))


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


def resized(image: Image.Image, name: str, factor: float) -> Image.Image:
    """A1111's upscale with a filter: to `factor` times the size, then Lanczos to the size rounded down to a
    multiple of 8 where they differ; the None upscaler leaves the image as it is."""
    if name == NONE:
        return image
    dest = (int(image.width * factor) // 8 * 8, int(image.height * factor) // 8 * 8)
    out = image.resize((int(image.width * factor), int(image.height * factor)), FILTERS[name])
    return out if out.size == dest else out.resize(dest, Image.Resampling.LANCZOS)


def run(image: Image.Image, up: Upscale) -> tuple[Image.Image, str]:
    """The upscaled image (RGB) and A1111's postprocessing infotext of it."""
    image = image.convert("RGB")
    if up.upscaler_1 == NONE:
        return image, ""
    info: dict[str, str] = {}
    if up.resize_mode == 1:
        info["Postprocess upscale to"] = f"{up.width}x{up.height}"
    else:
        info["Postprocess upscale by"] = f"{up.scale:g}"
    factor = up.factor(image.size)
    out = resized(image, up.upscaler_1, factor)
    info["Postprocess upscaler"] = up.upscaler_1
    if up.upscaler_2 != NONE and up.visibility_2 > 0:
        out = Image.blend(out, resized(image, up.upscaler_2, factor), up.visibility_2)
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
