"""OpenAI's images API (`/v1/images/generations`, `/v1/images/edits`) on Stable Diffusion workers."""

from __future__ import annotations

import base64
import re
import time
from typing import Any, Literal

import orjson
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from graycat.api.dialects.a1111 import MAX_SEED, Limits
from graycat.api.errors import ApiError
from graycat.images import codec
from graycat.images.params import GenerationParams

_SIZE = re.compile(r"^(\d+)x(\d+)$")
DEFAULT_STEPS = 20


class ImageGenerationRequest(BaseModel):
    """OpenAI's fields; `steps`, `seed`, `negative_prompt` and `cfg_scale` are extensions for SD."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1)
    model: str | None = Field(None, description="A checkpoint name from /sdapi/v1/sd-models; default otherwise.")
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, description="WIDTHxHEIGHT; default: the checkpoint family's (512, 768, 1024).")
    response_format: Literal["b64_json", "url"] = "b64_json"
    steps: int = Field(DEFAULT_STEPS, ge=1)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    negative_prompt: str = ""
    cfg_scale: float = Field(7.0, ge=0, le=100)

    @field_validator("size")
    @classmethod
    def _size_format(cls, value: str | None) -> str | None:
        if value is not None and not _SIZE.match(value):
            raise ValueError("must be WIDTHxHEIGHT, such as 512x512")
        return value


def _size(size: str, limits: Limits) -> tuple[int, int]:
    match = _SIZE.match(size)
    width, height = (int(match[1]), int(match[2])) if match else (0, 0)
    for value in (width, height):
        if value % 8 or not 8 <= value <= limits.max_size:
            raise ApiError(
                400,
                f"size {size}: must be WIDTHxHEIGHT, multiples of 8 from 8 to {limits.max_size}",
                code="invalid_size",
                param="size",
            )
    return width, height


def _check(steps: int, n: int, limits: Limits) -> None:
    if steps > limits.max_steps:
        raise ApiError(
            400,
            f"steps {steps} is over this server's maximum of {limits.max_steps}",
            code="invalid_request",
            param="steps",
        )
    if n > limits.max_images:
        raise ApiError(
            400,
            f"n {n} is over this server's maximum of {limits.max_images} images per request",
            code="invalid_request",
            param="n",
        )


def to_params(
    req: ImageGenerationRequest, *, checkpoint: str, limits: Limits, random_seed: int, default_size: int = 512
) -> GenerationParams:
    """The generation job of a request; `default_size`: the checkpoint family's, for a request without `size`."""
    width, height = _size(req.size or f"{default_size}x{default_size}", limits)
    _check(req.steps, req.n, limits)
    return GenerationParams(
        checkpoint=checkpoint,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        seed=random_seed if req.seed is None else req.seed,
        width=width,
        height=height,
        steps=req.steps,
        cfg_scale=req.cfg_scale,
        batch_size=req.n,
    )


def images_response(prompt: str) -> Any:
    """The reshape of a worker's answer into OpenAI's `{"created", "data": [{"b64_json"}]}`."""

    def reshape(body: bytes) -> bytes:
        images = orjson.loads(body)["images"]
        return orjson.dumps(
            {"created": int(time.time()), "data": [{"b64_json": image, "revised_prompt": prompt} for image in images]}
        )

    return reshape


def with_urls(body: bytes, base_url: str, file_ids: list[str]) -> tuple[bytes, list[bytes]]:
    """An answer with `url`s (`<base_url>/v1/images/files/<id>.png`) in place of `b64_json`, and the PNGs to
    serve there, in order."""
    answer = orjson.loads(body)
    pngs = []
    for item, file_id in zip(answer["data"], file_ids, strict=True):
        pngs.append(base64.b64decode(item.pop("b64_json")))
        item["url"] = f"{base_url.rstrip('/')}/v1/images/files/{file_id}.png"
    return orjson.dumps(answer), pngs


def _image(data: bytes, param: str) -> Image.Image:
    try:
        return codec.decode(base64.b64encode(data).decode())
    except codec.BadImage as exc:
        raise ApiError(400, f"{param} {exc}", code="invalid_image", param=param) from None


def edit_params(
    image: bytes,
    mask: bytes | None,
    *,
    prompt: str,
    n: int,
    size: str | None,
    steps: int,
    seed: int,
    checkpoint: str,
    limits: Limits,
) -> GenerationParams:
    """`/v1/images/edits`: the fully transparent pixels of `mask` (or, without one, of the image) are repainted;
    the answer has the image's size unless `size` asks for another."""
    picture = _image(image, "image")
    cover = _image(mask, "mask") if mask is not None else picture
    if cover.size != picture.size:
        raise ApiError(
            400,
            f"the mask is {cover.width}x{cover.height} but the image is {picture.width}x{picture.height}",
            code="invalid_image",
            param="mask",
        )
    if "A" not in cover.getbands():
        raise ApiError(
            400,
            "send a mask (or an image) with transparent areas: they mark what to repaint",
            code="invalid_image",
            param="mask" if mask is not None else "image",
        )
    width, height = _size(size or f"{picture.width}x{picture.height}", limits)
    _check(steps, n, limits)
    repaint = cover.getchannel("A").point(lambda alpha: 255 if alpha == 0 else 0)
    return GenerationParams(
        checkpoint=checkpoint,
        prompt=prompt,
        seed=seed,
        width=width,
        height=height,
        steps=steps,
        batch_size=n,
        mode="img2img",
        init_images=[codec.encode_png(picture.convert("RGB"))],
        mask=codec.encode_png(repaint),
        denoising_strength=1.0,
        inpainting_fill=1,
        inpaint_full_res=False,
    )
