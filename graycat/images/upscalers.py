"""The upscalers of A1111's hires fix that run here. A1111's latent upscalers resize the latents; here every
upscaler resizes the first pass's image with the matching filter, and the second pass then denoises it."""

from __future__ import annotations

from PIL import Image

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


def find(name: str | None) -> str:
    """The upscaler `name` means (case-insensitive; empty: A1111's default, Latent). KeyError when unknown."""
    if not name or not name.strip():
        return DEFAULT
    for known in UPSCALERS:
        if known.lower() == name.strip().lower():
            return known
    raise KeyError(name)


def upscale(image: Image.Image, upscaler: str, width: int, height: int) -> Image.Image:
    return image.resize((width, height), UPSCALERS[upscaler])
