"""Automatic1111's `/sdapi/v1` API: requests checked and turned into generation jobs, answers shaped as A1111's."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from graycat.api.dialects import a1111_options
from graycat.api.errors import ApiError
from graycat.images import (
    checkpoints,
    codec,
    controlnets,
    extras,
    families,
    loras,
    model_choice,
    preprocessors,
    upscalers,
)
from graycat.images.params import ControlUnit, GenerationParams, HiresFix, SdUpscale
from graycat.images.samplers import UnknownSampler, resolve
from graycat.images.tiles import sd_upscale_tiles

MAX_SEED = 4294967295
OUTPAINT = "poor man's outpainting"  # A1111's script: script_args [pixels, mask_blur, inpainting_fill, directions]
SD_UPSCALE = "sd upscale"  # A1111's script: script_args [unused, overlap, upscaler (index or name), scale]
SCRIPTS = (OUTPAINT, SD_UPSCALE)
SIDES = ("left", "up", "right", "down")
CONTROLNET = "controlnet"


@dataclass(frozen=True, slots=True)
class Limits:
    max_size: int
    max_steps: int
    max_images: int


class Txt2ImgRequest(BaseModel):
    """`POST /sdapi/v1/txt2img`: A1111's fields; unknown and legacy ones are accepted and echoed back."""

    model_config = ConfigDict(extra="allow")

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = Field(-1, ge=-1, le=MAX_SEED)
    subseed: int = Field(-1, ge=-1, le=MAX_SEED)
    subseed_strength: float = Field(0.0, ge=0, le=1)
    sampler_name: str | None = None
    sampler_index: str | None = None
    scheduler: str | None = None
    batch_size: int = Field(1, ge=1)
    n_iter: int = Field(1, ge=1)
    steps: int = Field(50, ge=1)
    cfg_scale: float = Field(7.0, ge=0, le=100)
    width: int = Field(512, ge=8)
    height: int = Field(512, ge=8)
    tiling: bool | None = None
    eta: float | None = Field(None, ge=0, le=1)
    denoising_strength: float | None = Field(None, ge=0, le=1)
    enable_hr: bool = False
    # the hires fix (txt2img with enable_hr); like every A1111 field each may be null, and none is checked
    # unless enable_hr is set
    hr_scale: float | None = None
    hr_upscaler: str | None = None
    hr_second_pass_steps: int | None = None
    hr_resize_x: int | None = None
    hr_resize_y: int | None = None
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str | None = None
    hr_negative_prompt: str | None = None
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    override_settings: dict[str, Any] | None = None
    script_name: str | None = None
    script_args: list[Any] = Field(default_factory=list)
    alwayson_scripts: dict[str, Any] | None = None
    send_images: bool = True
    restore_faces: bool | None = None


class Img2ImgRequest(Txt2ImgRequest):
    """`POST /sdapi/v1/img2img`: init image, optional inpainting mask and its options."""

    init_images: list[str] | None = None
    resize_mode: int = Field(0, ge=0, le=3)
    mask: str | None = None
    mask_blur: int = Field(4, ge=0, le=256)
    inpainting_fill: int = Field(0, ge=0, le=3)
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = Field(0, ge=0)
    inpainting_mask_invert: int = Field(0, ge=0, le=1)
    include_init_images: bool = False


class PngInfoRequest(BaseModel):
    image: str = Field(min_length=1)


# What A1111 echoes in `parameters` for fields a request left out (numbers and flags never null).
_ECHO_DEFAULTS: dict[str, Any] = {
    "prompt": "",
    "negative_prompt": "",
    "styles": [],
    "seed": -1,
    "subseed": -1,
    "subseed_strength": 0,
    "seed_resize_from_h": -1,
    "seed_resize_from_w": -1,
    "sampler_name": None,
    "scheduler": None,
    "batch_size": 1,
    "n_iter": 1,
    "steps": 50,
    "cfg_scale": 7.0,
    "width": 512,
    "height": 512,
    "restore_faces": False,
    "tiling": False,
    "do_not_save_samples": False,
    "do_not_save_grid": False,
    "eta": 0,
    "denoising_strength": 0.75,
    "s_min_uncond": 0,
    "s_churn": 0,
    "s_tmax": 0,
    "s_tmin": 0,
    "s_noise": 1,
    "override_settings": {},
    "override_settings_restore_afterwards": True,
    "refiner_checkpoint": None,
    "refiner_switch_at": None,
    "disable_extra_networks": False,
    "comments": {},
    "script_name": None,
    "script_args": [],
    "send_images": True,
    "save_images": False,
    "alwayson_scripts": {},
    "infotext": None,
}
_TXT2IMG_DEFAULTS = {
    "enable_hr": False,
    "firstphase_width": 0,
    "firstphase_height": 0,
    "hr_scale": 2.0,
    "hr_upscaler": None,
    "hr_second_pass_steps": 0,
    "hr_resize_x": 0,
    "hr_resize_y": 0,
    "hr_checkpoint_name": None,
    "hr_sampler_name": None,
    "hr_scheduler": None,
    "hr_prompt": "",
    "hr_negative_prompt": "",
}
_IMG2IMG_DEFAULTS = {
    "init_images": None,
    "resize_mode": 0,
    "image_cfg_scale": 1.5,
    "mask": None,
    "mask_blur_x": 4,
    "mask_blur_y": 4,
    "mask_blur": 4,
    "mask_round": True,
    "inpainting_fill": 0,
    "inpaint_full_res": True,
    "inpaint_full_res_padding": 0,
    "inpainting_mask_invert": 0,
    "initial_noise_multiplier": 1.0,
    "latent_mask": None,
    "include_init_images": False,
}


def parameters_echo(raw: dict[str, Any], img2img: bool) -> dict[str, Any]:
    """A1111's `parameters`: the request over the defaults; a null the client sent for a field with a default
    is echoed as the default, and the images are left out unless `include_init_images`."""
    echo = {**_ECHO_DEFAULTS, **(_IMG2IMG_DEFAULTS if img2img else _TXT2IMG_DEFAULTS)}
    for key, value in raw.items():
        if value is not None or echo.get(key) is None:
            echo[key] = value
    if img2img and not raw.get("include_init_images"):
        echo["init_images"] = None
        echo["mask"] = None
    return echo


def _bad(message: str, param: str, status: int = 422, code: str = "invalid_request") -> ApiError:
    return ApiError(status, message, code=code, param=param)


def not_offered(param: str, message: str) -> ApiError:
    """501: a feature that needs weights or code this server does not have (A1111 would run it)."""
    return ApiError(501, f"{param}: {message}", code="not_implemented", param=param)


def _check(req: Txt2ImgRequest, limits: Limits) -> None:
    if named := [str(style) for style in req.styles or [] if str(style).strip()]:  # Unity sends [""]
        raise _bad(
            f"styles {', '.join(named)}: this server keeps no prompt styles (GET prompt-styles "
            "is empty); put their text in the prompt",
            "styles",
        )
    if req.restore_faces:
        raise not_offered(
            "restore_faces",
            "face restoration needs GFPGAN or CodeFormer weights "
            "(models/GFPGAN, models/Codeformer), which this server does not load",
        )
    for name in ("width", "height"):
        value = getattr(req, name)
        if value % 8:
            raise _bad(f"{name} must be a multiple of 8, got {value}", name)
        if value > limits.max_size:
            raise _bad(f"{name} {value} is over this server's maximum of {limits.max_size} (SD_MAX_SIZE)", name)
    if req.steps > limits.max_steps:
        raise _bad(f"steps {req.steps} is over this server's maximum of {limits.max_steps} (SD_MAX_STEPS)", "steps")
    if req.batch_size * req.n_iter > limits.max_images:
        raise _bad(
            f"batch_size x n_iter asks for {req.batch_size * req.n_iter} images; this server makes at most "
            f"{limits.max_images} per request (SD_MAX_IMAGES)",
            "batch_size",
        )
    if req.script_name and not (isinstance(req, Img2ImgRequest) and req.script_name.strip().lower() in SCRIPTS):
        raise _bad(
            f"script '{req.script_name}' not found: the A1111 scripts this server runs are "
            '"Poor man\'s outpainting" and "SD upscale" (img2img)',
            "script_name",
        )
    for name, script in (req.alwayson_scripts or {}).items():
        if script and name.lower() != CONTROLNET:
            raise _bad(
                f"always-on script '{name}' not found: of the A1111 extensions this server runs ControlNet only",
                "alwayson_scripts",
            )


def _image(data: str, param: str) -> tuple[int, int]:
    try:
        return codec.decode(data).size
    except codec.BadImage as exc:
        raise _bad(f"{param} {exc}", param, 400, "invalid_image") from None


def check_loras(prompt: str, model: dict[str, Any], param: str = "prompt") -> None:
    """`model_choice.check_loras`, its refusal answered as an error of the field `param`."""
    try:
        model_choice.check_loras(prompt, model)
    except model_choice.ChoiceError as exc:
        raise choice_error(exc, param) from None


def choose_vae(
    wanted: Any, saved: str | None, available: list[str], param: str, model: dict[str, Any] | None = None
) -> str | None:
    """`model_choice.choose_vae`, its refusal answered as an error of the field `param`."""
    try:
        return model_choice.choose_vae(wanted, saved, available, model)
    except model_choice.ChoiceError as exc:
        raise choice_error(exc, param) from None


def choice_error(exc: model_choice.ChoiceError, param: str) -> ApiError:
    return _bad(str(exc), param, exc.status, exc.code)


def to_params(
    req: Txt2ImgRequest,
    *,
    checkpoint: str,
    model: dict[str, Any],
    saved: dict[str, str],
    limits: Limits,
    random_seeds: tuple[int, int],
    served: dict[str, dict[str, Any]] | None = None,
) -> GenerationParams:
    """Check a request against the server's limits and the checkpoint's announced `model` info, and make the
    generation job of it. `random_seeds` replace a seed and subseed of -1; `saved` are the token's options;
    `served`: every served checkpoint's info (for `refiner_checkpoint`)."""
    family = model_choice.family_of(model)
    if family is not None:  # a size the client leaves out is the family's (A1111's 512 is SD 1.x's)
        for side in ("width", "height"):
            if side not in req.model_fields_set:
                setattr(req, side, family.size)
    _check(req, limits)
    check_loras(req.prompt, model)
    vae = choose_vae(
        (req.override_settings or {}).get("sd_vae"),
        saved.get("sd_vae"),
        model.get("vaes", []),
        "override_settings",
        model,
    )
    units = _control_units(req, model)
    try:
        choice = resolve(req.sampler_name or req.sampler_index, req.scheduler)
    except UnknownSampler as exc:
        raise _bad(str(exc), "sampler_name", 400, "unknown_sampler") from None
    opts = {**a1111_options.DEFAULTS, **a1111_options.decode(saved)}
    for key, value in (req.override_settings or {}).items():
        if key in a1111_options.HONOURED and key not in ("sd_model_checkpoint", "sd_vae"):
            opts[key] = a1111_options.check(key, value, "override_settings")
    clip = int(opts["CLIP_stop_at_last_layers"])
    params = GenerationParams(
        checkpoint=checkpoint,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        seed=req.seed if req.seed >= 0 else random_seeds[0],
        subseed=req.subseed if req.subseed >= 0 else random_seeds[1],
        subseed_strength=req.subseed_strength,
        sampler=choice.sampler.name,
        schedule=choice.schedule.name,
        steps=req.steps,
        cfg_scale=req.cfg_scale,
        width=req.width,
        height=req.height,
        batch_size=req.batch_size,
        n_iter=req.n_iter,
        clip_skip=clip,
        tiling=bool(req.tiling),
        eta=req.eta,
        send_images=req.send_images,
        vae=vae,
        controlnets=units,
        eta_noise_seed_delta=int(opts["eta_noise_seed_delta"]),
        **a1111_options.output(opts),
    )
    if req.enable_hr and not isinstance(req, Img2ImgRequest):  # A1111's img2img has no hires fix
        params.hires = _hires(req, limits, checkpoint, model)
    if family is not None and family.base == "sdxl-refiner" and not isinstance(req, Img2ImgRequest):
        raise _bad(
            f"checkpoint '{checkpoint}' is an SDXL refiner, which only redraws images: use it with img2img, or "
            "as refiner_checkpoint of an SDXL txt2img",
            "override_settings",
        )
    if req.refiner_checkpoint not in (None, "", "None"):
        params.refiner, params.refiner_switch_at = _refiner(req, family, served or {}, bool(units))
    if isinstance(req, Img2ImgRequest):
        if not req.init_images:
            raise _bad("init_images: img2img needs at least one base64 image", "init_images")
        size = _image(req.init_images[0], "init_images")
        for extra in req.init_images[1:]:
            _image(extra, "init_images")
        if req.mask:
            mask_size = _image(req.mask, "mask")
            if mask_size != size:
                raise _bad(
                    f"the mask is {mask_size[0]}x{mask_size[1]} but the init image is {size[0]}x{size[1]}",
                    "mask",
                    400,
                    "invalid_image",
                )
        params.mode = "img2img"
        params.init_images = req.init_images[:1]
        params.mask = req.mask
        params.denoising_strength = 0.75 if req.denoising_strength is None else req.denoising_strength
        params.mask_blur, params.inpainting_fill = req.mask_blur, req.inpainting_fill
        params.inpaint_full_res, params.inpaint_full_res_padding = req.inpaint_full_res, req.inpaint_full_res_padding
        params.inpainting_mask_invert, params.resize_mode = bool(req.inpainting_mask_invert), req.resize_mode
        if req.script_name and req.script_name.strip().lower() == OUTPAINT:
            _outpainting(req, params, limits)
        elif req.script_name:
            params.sd_upscale = _sd_upscale(req, size, limits, model_upscalers(model))
    return params


def _refiner(
    req: Txt2ImgRequest, family: families.Family | None, served: dict[str, dict[str, Any]], controlled: bool
) -> tuple[str | None, float]:
    """A1111's refiner: the checkpoint that takes the latents over at `refiner_switch_at` (0 to 1, default
    0.8; 1: never). Here an SDXL txt2img's or plain img2img's without ControlNet units (`controlled`), with an
    SDXL checkpoint (a refiner, or another base); a relayed WebUI's checkpoints are left to the WebUI."""
    name = checkpoints.find(str(req.refiner_checkpoint), served)
    if name is None:
        raise _bad(
            f"refiner_checkpoint '{req.refiner_checkpoint}' not found; available: {', '.join(served) or 'none'}",
            "refiner_checkpoint",
            404,
            "model_not_found",
        )
    switch = 0.8 if req.refiner_switch_at is None else req.refiner_switch_at
    if not 0 < switch <= 1:
        raise _bad("refiner_switch_at must be more than 0 and at most 1", "refiner_switch_at")
    refiner = model_choice.family_of(served[name])
    if family is None:  # a relayed WebUI's checkpoint: the WebUI decides
        return (name, switch) if switch < 1 else (None, 1.0)
    in_parts = isinstance(req, Img2ImgRequest) and bool(req.mask or req.script_name)
    if in_parts or controlled or family.name != "sdxl":
        raise _bad(
            "refiner_checkpoint: the refiner runs here in SDXL (base) txt2img and plain img2img, without mask, "
            f"script or ControlNet (the request's checkpoint is {family.label})",
            "refiner_checkpoint",
        )
    if refiner is None or refiner.latent_space != "sdxl" or refiner.inpainting:
        raise _bad(
            f"refiner_checkpoint '{name}' is {refiner.label if refiner else 'of an unknown family'}: an SDXL "
            "image is refined by an SDXL refiner or base checkpoint",
            "refiner_checkpoint",
            422,
            "refiner_family_mismatch",
        )
    return (name, switch) if switch < 1 else (None, 1.0)


def _hires(req: Txt2ImgRequest, limits: Limits, checkpoint: str, model: dict[str, Any]) -> HiresFix:
    """The second pass of A1111's hires fix, sized as A1111 sizes it: `hr_scale` times the image (default 2), or
    `hr_resize_x` x `hr_resize_y`; with one of them 0 the other keeps the aspect ratio, with both the image is
    upscaled to cover them and centre-cropped. Sizes are rounded down to multiples of 8."""
    if (
        req.hr_checkpoint_name not in (None, "", "Use same checkpoint")
        and checkpoints.find(req.hr_checkpoint_name, {checkpoint: model}) != checkpoint
    ):
        raise _bad(
            f"hr_checkpoint_name '{req.hr_checkpoint_name}': the hires pass runs on the request's own checkpoint here",
            "hr_checkpoint_name",
        )
    resize_x, resize_y = req.hr_resize_x or 0, req.hr_resize_y or 0
    scale = 2.0 if req.hr_scale is None else req.hr_scale
    if resize_x < 0 or resize_y < 0 or not 1 <= scale <= 8:
        raise _bad("hr_scale must be 1 to 8, and hr_resize_x and hr_resize_y 0 or more", "hr_scale")
    if resize_x and resize_y:
        width, height = resize_x, resize_y
        if req.width / req.height < resize_x / resize_y:
            upscale = (resize_x, resize_x * req.height // req.width)
        else:
            upscale = (resize_y * req.width // req.height, resize_y)
    else:
        if resize_x or resize_y:
            width = resize_x or resize_y * req.width // req.height
            height = resize_y or resize_x * req.height // req.width
        else:
            width, height = int(req.width * scale), int(req.height * scale)
        upscale = (width, height)
    width, height = width // 8 * 8, height // 8 * 8
    param = "hr_resize_x" if resize_x or resize_y else "hr_scale"
    if width < req.width or height < req.height:
        raise _bad(f"the hires size {width}x{height} is smaller than the image ({req.width}x{req.height})", param)
    if max(upscale) > limits.max_size:
        raise _bad(
            f"the hires size {upscale[0]}x{upscale[1]} is over this server's maximum of {limits.max_size} "
            "(SD_MAX_SIZE)",
            param,
        )
    steps = req.hr_second_pass_steps or 0
    if not 0 <= steps <= limits.max_steps:
        raise _bad(
            f"hr_second_pass_steps must be 0 (the first pass's) to {limits.max_steps} (SD_MAX_STEPS)",
            "hr_second_pass_steps",
        )
    models = model_upscalers(model)
    try:
        upscaler = upscalers.find(req.hr_upscaler, models)
    except KeyError:
        message = f"upscaler '{req.hr_upscaler}' not found; available: {', '.join([*upscalers.UPSCALERS, *models])}"
        if extras.is_model_upscaler(str(req.hr_upscaler)):
            raise not_offered("hr_upscaler", message + MODEL_UPSCALER_HINT) from None
        raise _bad(message, "hr_upscaler", 400, "unknown_upscaler") from None
    sampler = schedule = ""
    same = {None, "", "Use same sampler", "Use same scheduler"}
    if req.hr_sampler_name not in same or req.hr_scheduler not in same:
        name = req.hr_sampler_name if req.hr_sampler_name not in same else req.sampler_name or req.sampler_index
        try:
            choice = resolve(name, req.hr_scheduler if req.hr_scheduler not in same else req.scheduler)
        except UnknownSampler as exc:
            raise _bad(str(exc), "hr_sampler_name", 400, "unknown_sampler") from None
        sampler, schedule = choice.sampler.name, choice.schedule.name
    prompt = req.hr_prompt or ""
    check_loras(prompt, model, "hr_prompt")
    if prompt and loras.parse(prompt)[1] != loras.parse(req.prompt)[1]:
        raise _bad(
            "hr_prompt: the prompt's LoRAs stay loaded for both passes here, so hr_prompt may name only "
            "those, with the same weights",
            "hr_prompt",
        )
    strength = 0.75 if req.denoising_strength is None else req.denoising_strength
    return HiresFix(
        width,
        height,
        upscaler,
        steps,
        *(upscale if upscale != (width, height) else (0, 0)),
        denoising_strength=strength,
        sampler=sampler,
        schedule=schedule,
        prompt=prompt,
        negative_prompt=req.hr_negative_prompt or "",
    )


def _thresholds(unit: dict[str, Any], module: str, where: str) -> tuple[float, float]:
    """Canny's low and high thresholds (`threshold_a`, `threshold_b`; the extension sends -1 for its default)."""
    given: list[float] = []
    for key, default in zip(("threshold_a", "threshold_b"), preprocessors.CANNY_DEFAULTS, strict=True):
        value = unit.get(key)
        try:
            number = default if value is None else float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not math.isfinite(number):
            raise _bad(f"{where}: {key} must be a number", "alwayson_scripts")
        given.append(default if number == -1 else number)
    low, high = given
    if module.lower() == preprocessors.CANNY and not 1 <= low <= high <= 255:
        raise _bad(f"{where}: canny needs 1 <= threshold_a (low) <= threshold_b (high) <= 255", "alwayson_scripts")
    return low, high


def _control_units(req: Txt2ImgRequest, model: dict[str, Any]) -> list[ControlUnit]:
    """The enabled units of the A1111 ControlNet extension's `alwayson_scripts.controlnet.args`, each with a
    ControlNet model of the checkpoint's family (the same cross-attention width)."""
    available: list[str] = model.get("controlnets", [])
    script = next((v for k, v in (req.alwayson_scripts or {}).items() if k.lower() == CONTROLNET), None) or {}
    args = script.get("args", []) if isinstance(script, dict) else None
    if not isinstance(args, list) or not all(isinstance(unit, dict) for unit in args):
        raise _bad("alwayson_scripts.controlnet.args must be a list of ControlNet units (objects)", "alwayson_scripts")
    units = []
    for i, unit in enumerate(args):
        where = f"alwayson_scripts.controlnet.args[{i}]"
        if not unit.get("enabled", True):
            continue
        module = str(unit.get("module") or "none")
        if not preprocessors.known(module):
            raise _bad(
                f"{where}: preprocessor '{module}' is not run here (only canny and invert); send the "
                "preprocessed control image with module 'none'",
                "alwayson_scripts",
            )
        name = controlnets.find(str(unit.get("model") or ""), available)
        if name is None:
            raise _bad(
                f"{where}: ControlNet model '{unit.get('model')}' not found; available: "
                f"{', '.join(available) or 'none'} (models/ControlNet)",
                "alwayson_scripts",
                404,
                "model_not_found",
            )
        width, own = model.get("controlnet_info", {}).get(name, {}).get("context"), model.get("context")
        if width and own and width != own:
            raise _bad(
                f"{where}: ControlNet model '{name}' is made for {model_choice.width_label(int(width))}, but "
                f"checkpoint '{model.get('model_name')}' is {model_choice.width_label(int(own))}",
                "alwayson_scripts",
                422,
                "controlnet_family_mismatch",
            )
        image = unit.get("image") or unit.get("input_image")
        if isinstance(image, dict):  # the extension also takes {"image": ..., "mask": ...}
            image = image.get("image")
        if image is not None:
            if not isinstance(image, str):
                raise _bad(f"{where}: image must be a base64 image", "alwayson_scripts")
            _image(image, "alwayson_scripts")
        elif not isinstance(req, Img2ImgRequest):
            raise _bad(f"{where}: txt2img needs a control image ('image')", "alwayson_scripts")
        try:
            weight = float(unit.get("weight", 1.0))
            start, end = float(unit.get("guidance_start", 0.0)), float(unit.get("guidance_end", 1.0))
        except (TypeError, ValueError):
            raise _bad(
                f"{where}: weight, guidance_start and guidance_end must be numbers", "alwayson_scripts"
            ) from None
        if not (0 <= weight <= 2 and 0 <= start < end <= 1):
            raise _bad(
                f"{where}: weight must be 0 to 2 and 0 <= guidance_start < guidance_end <= 1", "alwayson_scripts"
            )
        low, high = _thresholds(unit, module, where)
        units.append(ControlUnit(name, image, weight, start, end, module.lower(), low, high))
    return units


def _outpainting(req: Img2ImgRequest, params: GenerationParams, limits: Limits) -> None:
    """A1111's "Poor man's outpainting": the image (at width x height) on a canvas grown by `pixels` on the
    chosen sides, the new border painted. The answer is the larger image."""
    args = [*req.script_args, None, None, None, None][:4]
    pixels, blur, fill, directions = (
        128 if args[0] is None else args[0],
        4 if args[1] is None else args[1],
        1 if args[2] is None else args[2],
        SIDES if args[3] is None else args[3],
    )
    if not isinstance(pixels, int) or pixels <= 0 or pixels % 8:
        raise _bad("script_args[0] (pixels to expand) must be a positive multiple of 8", "script_args")
    if not isinstance(blur, int) or blur < 0 or not isinstance(fill, int) or not 0 <= fill <= 3:
        raise _bad(
            "script_args[1] (mask blur) must be an integer >= 0 and script_args[2] (inpainting fill) 0 to 3",
            "script_args",
        )
    if not isinstance(directions, list | tuple) or not directions or not set(directions) <= set(SIDES):
        raise _bad(f"script_args[3] (directions) must be a non-empty list of {', '.join(SIDES)}", "script_args")
    if req.mask:
        raise _bad("outpainting paints the new border: send no mask", "mask")
    sides = [pixels if side in directions else 0 for side in SIDES]
    params.width, params.height = params.width + sides[0] + sides[2], params.height + sides[1] + sides[3]
    if max(params.width, params.height) > limits.max_size:
        raise _bad(
            f"outpainting to {params.width}x{params.height} is over this server's maximum of "
            f"{limits.max_size} (SD_MAX_SIZE)",
            "script_args",
        )
    params.outpaint, params.mask_blur, params.inpainting_fill = sides, blur, fill


MODEL_UPSCALER_HINT = (
    "; model upscalers run from the ESRGAN-family weights in the SD worker's models/ESRGAN and models/RealESRGAN "
    "folders, and it serves none of that name"
)


def model_upscalers(model: dict[str, Any]) -> list[str]:
    """The names of the ESRGAN-family upscalers the worker of a checkpoint (its announced info) serves."""
    return [str(u["name"]) for u in model.get("upscalers", []) if isinstance(u, dict) and u.get("name")]


def _sd_upscale(req: Img2ImgRequest, size: tuple[int, int], limits: Limits, models: list[str]) -> SdUpscale:
    """A1111's "SD upscale": the init image upscaled, then redrawn by img2img in tiles of width x height. The
    answer is the upscaled image. Its work (tiles x steps x n_iter) is held to that of SD_MAX_IMAGES images of
    SD_MAX_STEPS steps."""
    args = [*req.script_args, None, None, None, None][:4]
    overlap = 64 if args[1] is None else args[1]
    chosen = 0 if args[2] is None else args[2]
    scale = 2.0 if args[3] is None else args[3]
    if not isinstance(overlap, int) or not 0 <= overlap < min(req.width, req.height):
        raise _bad(
            "script_args[1] (tile overlap) must be an integer from 0 to less than the tile's width and height",
            "script_args",
        )
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 1 <= scale <= 4:
        raise _bad("script_args[3] (scale factor) must be a number from 1 to 4", "script_args")
    names = [name for name in upscalers.UPSCALERS if not name.startswith("Latent")] + models
    if isinstance(chosen, int) and not isinstance(chosen, bool) and 0 <= chosen < len(names):
        upscaler = names[chosen]
    else:
        upscaler = next((n for n in names if isinstance(chosen, str) and n.lower() == chosen.strip().lower()), "")
    if not upscaler:
        model = isinstance(chosen, str) and extras.is_model_upscaler(chosen)
        message = (
            f"script_args[2] (upscaler): '{chosen}' is not run here; available: {', '.join(names)} (or their index)"
        )
        if model:
            raise not_offered("script_args", message + MODEL_UPSCALER_HINT)
        raise _bad(message, "script_args", 400, "unknown_upscaler")
    if req.mask:
        raise _bad("SD upscale redraws the whole image: send no mask", "mask")
    if req.alwayson_scripts and any(req.alwayson_scripts.values()):
        raise _bad("SD upscale runs without always-on scripts (ControlNet) here", "alwayson_scripts")
    big = size if upscaler == "None" else (int(size[0] * scale) // 8 * 8, int(size[1] * scale) // 8 * 8)
    if big[0] < req.width or big[1] < req.height:
        raise _bad(
            f"the upscaled image ({big[0]}x{big[1]}) is smaller than a tile ({req.width}x{req.height}): "
            "tiles are width x height",
            "script_args",
        )
    if max(big) > limits.max_size:
        raise _bad(
            f"SD upscale to {big[0]}x{big[1]} is over this server's maximum of {limits.max_size} (SD_MAX_SIZE)",
            "script_args",
        )
    tiles = sd_upscale_tiles(big, req.width, req.height, overlap)
    work = len(tiles[0]) * len(tiles[1]) * req.n_iter
    if work * req.steps > limits.max_images * limits.max_steps:
        raise _bad(
            f"SD upscale would denoise {work} tiles of {req.steps} steps; this server does at most the "
            f"work of {limits.max_images} images of {limits.max_steps} steps per request (SD_MAX_IMAGES, "
            "SD_MAX_STEPS): use larger tiles, less overlap or fewer steps",
            "script_args",
        )
    return SdUpscale(overlap, upscaler, float(scale))


def with_parameters(echo: dict[str, Any]) -> Any:
    """The reshape of a worker's `{"images", "info"}` into A1111's `{"images", "parameters", "info"}`."""

    def reshape(body: bytes) -> bytes:
        answer = orjson.loads(body)
        return orjson.dumps({"images": answer["images"], "parameters": echo, "info": answer["info"]})

    return reshape


def checkpoint_entry(info: dict[str, Any], loaded: bool = False) -> dict[str, Any]:
    """One entry of `/sdapi/v1/sd-models`: A1111's fields, the family when the worker read it, and whether a
    worker holds it in memory."""
    entry = {k: info.get(k) for k in ("title", "model_name", "hash", "sha256", "filename", "config")}
    if info.get("family"):  # ours, beside A1111's fields (not known for a relayed WebUI's checkpoints)
        entry["family"] = info["family"]
    entry["loaded"] = loaded
    return entry


def progress(record: dict[str, str] | None, last: bytes | None, job_id: str | None, now: float) -> dict[str, Any]:
    """`GET /sdapi/v1/progress` from the token's latest job: its record and its latest progress event."""
    state = {
        "skipped": False,
        "interrupted": False,
        "stopping_generation": False,
        "job": "",
        "job_count": 0,
        "job_timestamp": "0",
        "job_no": 0,
        "sampling_step": 0,
        "sampling_steps": 0,
    }
    idle = {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None}
    if record is None or job_id is None:
        return idle
    if record["state"] in ("cancelled",):
        state["interrupted"] = True
    if record["state"] not in ("pending", "active"):
        return idle
    created = float(record["created"])
    state.update(
        job=f"task({job_id})", job_count=1, job_timestamp=time.strftime("%Y%m%d%H%M%S", time.localtime(created))
    )
    if not last:
        return {**idle, "textinfo": "Waiting..." if record["state"] == "pending" else "Starting..."}
    event = orjson.loads(last)
    steps = max(1, int(event["steps"]))
    state.update(
        job_count=int(event["job_count"]),
        job_no=int(event["job_no"]),
        sampling_step=int(event["step"]),
        sampling_steps=steps,
    )
    done = (int(event["job_no"]) + int(event["step"]) / steps) / max(1, int(event["job_count"]))
    elapsed = now - float(record.get("started", created))
    eta = elapsed * (1 - done) / done if done > 0 else 0.0
    return {**idle, "progress": round(done, 4), "eta_relative": round(eta, 3)}
