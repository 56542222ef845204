"""The upscalers of A1111's hires fix that run here. A1111's latent upscalers resize the latents; here every
upscaler resizes the first pass's image with the matching filter, and the second pass then denoises it. The
ESRGAN-family models an SD worker serves (named as it announces them) upscale the image with the model."""

from __future__ import annotations

from PIL import Image

from graycat.images.extras import ModelUpscaler, model_resized

Filter = Image.Resampling
UPSCALERS: dict[str, Filter] = {
    "Latent": Filter.BILINEAR,
    "Latent (antialiased)": Filter.BILINEAR,
    "Latent (bicubic)": Filter.BICUBIC,
    "Latent (bicubic antialiased)": Filter.BICUBIC,
    "Latent (nearest)": Filter.NEAREST,
    "Latent (nearest-exact)": Filter.NEAREST,
    "None": Filter.LANCZOS,
    "Lanczos": Filter.LANCZOS,
    "Nearest": Filter.NEAREST,
}
DEFAULT = "Latent"


def find(name: str | None, models: list[str] | tuple[str, ...] = ()) -> str:
    """The upscaler `name` means (case-insensitive; empty: A1111's default, Latent), among the filters and the
    model upscalers `models`. KeyError when unknown."""
    if not name or not name.strip():
        return DEFAULT
    for known in (*UPSCALERS, *models):
        if known.lower() == name.strip().lower():
            return known
    raise KeyError(name)


def upscale(
    image: Image.Image, upscaler: str, width: int, height: int, model: ModelUpscaler | None = None
) -> Image.Image:
    """`image` at `width` x `height` by a filter, or by `model` (the model upscaler `upscaler` names)."""
    if upscaler in UPSCALERS:
        return image.resize((width, height), UPSCALERS[upscaler])
    if model is None:
        raise KeyError(upscaler)
    return model_resized(image, (width, height), model)
