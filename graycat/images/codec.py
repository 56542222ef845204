"""Images as the APIs carry them: base64 PNG/JPEG in, base64 PNG (with A1111's `parameters` chunk) out."""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, PngImagePlugin, UnidentifiedImageError

ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


class BadImage(ValueError):
    """Not a base64-encoded PNG, JPEG or WebP image."""


MAX_PIXELS = 8192 * 8192


def decode(data: str) -> Image.Image:
    """A raw base64 image or a `data:image/...;base64,` URL, fully decoded (so a truncated file fails here);
    images over MAX_PIXELS are refused before they are decoded."""
    image = _opened(data)
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise BadImage(f"is not a readable image ({exc})") from None
    return image


def header_text(data: str) -> dict[str, str]:
    """The text chunks before a PNG's pixels (where A1111 writes `parameters`, and all A1111 reads back), of an
    image under MAX_PIXELS; its pixels are not decoded."""
    return {str(k): str(v) for k, v in _opened(data).info.items() if isinstance(v, str)}


def _opened(data: str) -> Image.Image:
    """The image's header read (format, size, early chunks); BadImage unless it is a PNG, JPEG or WebP of at
    most MAX_PIXELS."""
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadImage("is not valid base64") from None
    try:
        image = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise BadImage(f"is not a readable image ({exc})") from None
    if image.width * image.height > MAX_PIXELS:
        raise BadImage(f"is {image.width}x{image.height}, over the {MAX_PIXELS:,} pixels an image may have")
    if image.format not in ACCEPTED_FORMATS:
        raise BadImage(f"is a {image.format} image; send PNG, JPEG or WebP")
    return image


def encode_png(image: Image.Image, infotext: str | None = None) -> str:
    """Base64 PNG (no `data:` prefix), with the infotext in a `parameters` text chunk as A1111 writes it."""
    meta = PngImagePlugin.PngInfo()
    if infotext:
        meta.add_text("parameters", infotext)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=meta)
    return base64.b64encode(out.getvalue()).decode()
