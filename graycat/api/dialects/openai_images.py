"""OpenAI's images API (`/v1/images/generations`) on Stable Diffusion workers."""

from __future__ import annotations

import base64
import re
import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from graycat.api.dialects.a1111 import MAX_SEED, Limits
from graycat.api.errors import ApiError
from graycat.images.params import GenerationParams

_SIZE = re.compile(r"^(\d+)x(\d+)$")
DEFAULT_STEPS = 20


class ImageGenerationRequest(BaseModel):
    """OpenAI's fields; `steps`, `seed`, `negative_prompt` and `cfg_scale` are extensions for SD."""

    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1)
    model: str | None = Field(None, description="A checkpoint name from /sdapi/v1/sd-models; default otherwise.")
    n: int = Field(1, ge=1, le=10)
    size: str = "512x512"
    response_format: Literal["b64_json", "url"] = "b64_json"
    steps: int = Field(DEFAULT_STEPS, ge=1)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    negative_prompt: str = ""
    cfg_scale: float = Field(7.0, ge=0, le=100)

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not _SIZE.match(value):
            raise ValueError("must be WIDTHxHEIGHT, such as 512x512")
        return value


def to_params(req: ImageGenerationRequest, *, checkpoint: str, limits: Limits, random_seed: int) -> GenerationParams:
    match = _SIZE.match(req.size)
    assert match is not None  # checked by the model
    width, height = int(match[1]), int(match[2])
    for value in (width, height):
        if value % 8 or not 8 <= value <= limits.max_size:
            raise ApiError(400, f"size {req.size}: width and height must be multiples of 8 from 8 to "
                           f"{limits.max_size}", code="invalid_size", param="size")
    if req.steps > limits.max_steps:
        raise ApiError(400, f"steps {req.steps} is over this server's maximum of {limits.max_steps}",
                       code="invalid_request", param="steps")
    if req.n > limits.max_images:
        raise ApiError(400, f"n {req.n} is over this server's maximum of {limits.max_images} images per request",
                       code="invalid_request", param="n")
    return GenerationParams(checkpoint=checkpoint, prompt=req.prompt, negative_prompt=req.negative_prompt,
                            seed=random_seed if req.seed is None else req.seed, width=width, height=height,
                            steps=req.steps, cfg_scale=req.cfg_scale, batch_size=req.n)


def images_response(prompt: str) -> Any:
    """The reshape of a worker's answer into OpenAI's `{"created", "data": [{"b64_json"}]}`."""
    def reshape(body: bytes) -> bytes:
        images = orjson.loads(body)["images"]
        return orjson.dumps({"created": int(time.time()),
                             "data": [{"b64_json": image, "revised_prompt": prompt} for image in images]})
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
