"""A1111's Extras (`extra-single-image`, `extra-batch-images`) and `interrogate` requests: checked, and the
upscaling run on PIL (graycat/images/extras.py), or as a job on an SD worker when it names one of the
ESRGAN-family upscalers the workers serve; face restoration and captioning are refused with 501."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from graycat.api.dialects.a1111 import MODEL_UPSCALER_HINT, not_offered
from graycat.api.errors import ApiError
from graycat.images import codec, extras


class ExtrasRequest(BaseModel):
    """A1111's fields of both extras routes (its defaults; unknown fields are ignored, as there)."""

    model_config = ConfigDict(extra="ignore")

    resize_mode: int = Field(0, ge=0, le=1)
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    codeformer_visibility: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    codeformer_weight: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    upscaling_resize: float = Field(2, ge=1, le=8, allow_inf_nan=False)
    upscaling_resize_w: int = Field(512, ge=1)
    upscaling_resize_h: int = Field(512, ge=1)
    upscaling_crop: bool = True
    upscaler_1: str | None = extras.NONE
    upscaler_2: str | None = extras.NONE
    extras_upscaler_2_visibility: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    upscale_first: bool = False


class ExtrasSingleImageRequest(ExtrasRequest):
    image: str = ""


class FileData(BaseModel):
    data: str
    name: str = ""


class ExtrasBatchImagesRequest(ExtrasRequest):
    imageList: list[FileData] = Field(min_length=1)  # A1111's name


class InterrogateRequest(BaseModel):
    image: str = ""
    model: str = "clip"


INTERROGATORS = {
    "clip": "the BLIP captioning model and CLIP ViT-L/14 (models/BLIP, interrogate/)",
    "deepdanbooru": "the DeepDanbooru model (models/torch_deepdanbooru)",
}


def _bad(message: str, param: str, status: int = 422, code: str = "invalid_request") -> ApiError:
    return ApiError(status, message, code=code, param=param)


def _upscaler(name: str | None, param: str, models: list[str]) -> str:
    try:
        return extras.upscaler(name, models)
    except extras.NotRun as exc:
        available = f"available: {', '.join([extras.NONE, *extras.FILTERS, *models])}"
        if exc.model:
            raise not_offered(param, f"upscaler '{exc.name}' not found; {available}{MODEL_UPSCALER_HINT}") from None
        raise _bad(f"upscaler '{exc.name}' not found; {available}", param, 400, "unknown_upscaler") from None


def upscale_of(req: ExtrasRequest, models: list[str]) -> extras.Upscale:
    """The upscaling a request asks for, `models` being the ESRGAN-family upscalers the SD workers serve; 501
    for face restoration and model upscalers not served, 4xx for bad names."""
    if req.gfpgan_visibility > 0 or req.codeformer_visibility > 0:
        param = "gfpgan_visibility" if req.gfpgan_visibility > 0 else "codeformer_visibility"
        raise not_offered(
            param,
            "face restoration needs GFPGAN or CodeFormer weights (models/GFPGAN, "
            "models/Codeformer), which this server does not load",
        )
    return extras.Upscale(
        req.resize_mode,
        req.upscaling_resize,
        req.upscaling_resize_w,
        req.upscaling_resize_h,
        req.upscaling_crop,
        _upscaler(req.upscaler_1, "upscaler_1", models),
        _upscaler(req.upscaler_2, "upscaler_2", models),
        req.extras_upscaler_2_visibility,
    )


def _checked(data: str, up: extras.Upscale, param: str) -> Any:
    """The decoded image, refused (4xx) when it is not an image or would be upscaled too large."""
    try:
        image = codec.decode(data, extras.MAX_PIXELS)
    except codec.BadImage as exc:
        raise _bad(f"{param} {exc}", param, 400, "invalid_image") from None
    try:
        up.output_size(image.size)
    except extras.TooLarge as exc:
        raise _bad(str(exc), "upscaling_resize", 413, "image_too_large") from None
    except ValueError as exc:
        raise _bad(str(exc), "upscaling_resize") from None
    return image


def _checked_images(req: ExtrasRequest, up: extras.Upscale, max_images: int) -> list[tuple[str, Any]]:
    """The request's base64 images with their decoded images, each checked."""
    if isinstance(req, ExtrasBatchImagesRequest):
        if len(req.imageList) > max_images:
            raise _bad(
                f"imageList has {len(req.imageList)} images; this server takes at most {max_images} (SD_MAX_IMAGES)",
                "imageList",
            )
        found = [(item.data, f"imageList[{i}]") for i, item in enumerate(req.imageList)]
    else:
        assert isinstance(req, ExtrasSingleImageRequest)
        if not req.image:
            raise _bad("image: send a base64 image", "image", 400, "invalid_image")
        found = [(req.image, "image")]
    return [(data, _checked(data, up, param)) for data, param in found]


def images_of(req: ExtrasRequest, up: extras.Upscale, *, max_images: int) -> list[str]:
    """The request's base64 images, each checked (blocking: run it in a thread)."""
    return [data for data, _ in _checked_images(req, up, max_images)]


def answer(req: ExtrasRequest, images: list[str], info: str) -> bytes:
    """A1111's answer to either route, from the upscaled images and the last one's infotext."""
    shown = req.show_extras_results
    if isinstance(req, ExtrasBatchImagesRequest):
        return orjson.dumps({"html_info": extras.html_info(info), "images": images if shown else []})
    return orjson.dumps({"html_info": extras.html_info(info), "image": images[0] if shown else None})


def run_here(req: ExtrasRequest, up: extras.Upscale, output: dict[str, Any], *, max_images: int) -> bytes:
    """The answer of a request that runs no model, upscaled here (blocking: run it in a thread). `output`: the
    token's image encoding."""
    done, info = [], ""
    for _, image in _checked_images(req, up, max_images):
        out, info = extras.run(image, up)
        done.append(extras.encode(image, out, info, output))
    return answer(req, done, info)


def worker_answer(req: ExtrasRequest) -> Any:
    """The reshape of a worker's `{"images", "info"}` into A1111's answer."""

    def reshape(body: bytes) -> bytes:
        got = orjson.loads(body)
        return answer(req, list(got["images"]), str(got["info"]))

    return reshape


def interrogate(req: InterrogateRequest) -> ApiError:
    """Why `interrogate` is not run: 404 for a model A1111 does not have either, else 501 naming the weights."""
    try:
        codec.header_text(req.image)
    except codec.BadImage as exc:
        return _bad(f"image {exc}", "image", 400, "invalid_image")
    if req.model not in INTERROGATORS:
        return _bad(
            f"interrogate model '{req.model}' not found (A1111's are clip and deepdanbooru)",
            "model",
            404,
            "model_not_found",
        )
    return not_offered(
        "model", f"interrogate with '{req.model}' needs {INTERROGATORS[req.model]}, which this server does not load"
    )
