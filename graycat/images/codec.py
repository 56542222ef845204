"""Images as the APIs carry them: base64 PNG/JPEG/WebP in; base64 PNG (A1111's `parameters` text chunk), JPEG
or WebP (the infotext in the EXIF UserComment, as A1111 writes it) out."""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, PngImagePlugin, UnidentifiedImageError

ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


class BadImage(ValueError):
    """Not a base64-encoded PNG, JPEG or WebP image."""


MAX_PIXELS = 8192 * 8192


def decode(data: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A raw base64 image or a `data:image/...;base64,` URL, fully decoded (so a truncated file fails here);
    images over `max_pixels` are refused before they are decoded."""
    image = _opened(data, max_pixels)
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise BadImage(f"is not a readable image ({exc})") from None
    return image


def header_text(data: str) -> dict[str, str]:
    """The text chunks before a PNG's pixels (where A1111 writes `parameters`, and all A1111 reads back), or the
    EXIF UserComment of a JPEG or WebP as `parameters`, of an image under MAX_PIXELS; its pixels are not
    decoded."""
    image = _opened(data)
    items = {str(k): str(v) for k, v in image.info.items() if isinstance(v, str)}
    comment = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT) if "exif" in image.info else None
    if isinstance(comment, bytes) and comment:
        items.setdefault("parameters", _comment_text(comment))
    return items


_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286
_UNICODE = b"UNICODE\0"


def _comment_text(comment: bytes) -> str:
    """An EXIF UserComment: an 8-byte character code, then the text (UTF-16 for UNICODE, as A1111 writes)."""
    code, body = comment[:8], comment[8:]
    if code == _UNICODE:
        for encoding in ("utf-16-be", "utf-16-le"):
            try:
                return body.decode(encoding)
            except UnicodeDecodeError:
                continue
    return body.decode("utf-8", errors="replace").rstrip("\0")


def _opened(data: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image's header read (format, size, early chunks); BadImage unless it is a PNG, JPEG or WebP of at
    most `max_pixels`."""
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
    if image.width * image.height > max_pixels:
        raise BadImage(f"is {image.width}x{image.height}, over the {max_pixels:,} pixels an image may have here")
    if image.format not in ACCEPTED_FORMATS:
        raise BadImage(f"is a {image.format} image; send PNG, JPEG or WebP")
    return image


def encode_png(image: Image.Image, infotext: str | None = None, texts: dict[str, str] | None = None) -> str:
    """Base64 PNG (no `data:` prefix), with the infotext in a `parameters` text chunk as A1111 writes it, and any
    other `texts` chunks."""
    meta = PngImagePlugin.PngInfo()
    for key, value in {**({"parameters": infotext} if infotext else {}), **(texts or {})}.items():
        meta.add_text(key, value)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=meta)
    return base64.b64encode(out.getvalue()).decode()


FORMATS = ("png", "jpeg", "webp")  # A1111's samples_format ("jpg" is "jpeg")


def encode(
    image: Image.Image, infotext: str | None = None, *, fmt: str = "png", quality: int = 80, lossless: bool = False
) -> str:
    """Base64 `fmt` image as A1111 sends it for its samples_format: PNG as `encode_png`; JPEG (RGB) and WebP
    at `quality` (WebP `lossless` as asked) with the infotext in the EXIF UserComment."""
    if fmt == "png":
        return encode_png(image, infotext)
    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = _UNICODE + (infotext or "").encode("utf-16-be")
    out = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(out, format="JPEG", quality=quality, exif=exif)
    else:
        image.save(out, format="WEBP", quality=quality, lossless=lossless, exif=exif)
    return base64.b64encode(out.getvalue()).decode()
