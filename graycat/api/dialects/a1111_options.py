"""A1111's settings (`/sdapi/v1/options`): the keys its clients read, with A1111's defaults, and what each one
does here. Options are per token. Three kinds:

- honoured: they change what a generation makes or how its images are encoded;
- fixed: they describe this server (it saves nothing to disk, restores no faces, ...): shown as they are here, a
  posted value is ignored;
- kept: client and WebUI preferences with no effect here: stored and shown back, as A1111 does.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from graycat.api.errors import ApiError

# honoured by the generation job (see to_params) or the image encoding
HONOURED = frozenset(
    {
        "sd_model_checkpoint",
        "sd_vae",
        "CLIP_stop_at_last_layers",
        "samples_format",
        "jpeg_quality",
        "webp_lossless",
        "enable_pnginfo",
        "eta_noise_seed_delta",
    }
)
# stored by earlier versions as plain strings (the others are stored as JSON)
_PLAIN = frozenset({"sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers"})
SAMPLES_FORMATS = ("png", "jpg", "jpeg", "webp")

FIXED: dict[str, Any] = {
    "samples_save": False,
    "grid_save": False,
    "save_txt": False,
    "return_grid": False,
    "face_restoration": False,
    "save_images_before_face_restoration": False,
    "save_images_before_highres_fix": False,
    "save_images_before_color_correction": False,
    "save_mask": False,
    "save_mask_composite": False,
    "save_init_img": False,
    "save_incomplete_images": False,
    "export_for_4chan": False,
    "randn_source": "CPU",
    "show_progress_type": "Approx cheap",
    "live_previews_image_format": "png",
    "sd_checkpoints_limit": 1,
    "sd_vae_encode_method": "Full",
    "sd_vae_decode_method": "Full",
    "upscaler_for_img2img": None,
    "realesrgan_enabled_models": [],
    "api_enable_requests": False,
    "sd_checkpoint_hash": None,
}

KEPT: dict[str, Any] = {
    "samples_filename_pattern": "",
    "save_images_add_number": True,
    "grid_format": "png",
    "grid_extended_filename": False,
    "grid_only_if_multiple": True,
    "grid_prevent_empty_spots": False,
    "n_rows": -1,
    "img_downscale_threshold": 4.0,
    "target_side_length": 4000,
    "img_max_size_mp": 200,
    "use_original_name_batch": True,
    "use_upscaler_name_as_suffix": False,
    "save_selected_only": True,
    "outdir_samples": "",
    "outdir_txt2img_samples": "outputs/txt2img-images",
    "outdir_img2img_samples": "outputs/img2img-images",
    "outdir_extras_samples": "outputs/extras-images",
    "outdir_grids": "",
    "outdir_txt2img_grids": "outputs/txt2img-grids",
    "outdir_img2img_grids": "outputs/img2img-grids",
    "outdir_save": "log/images",
    "outdir_init_images": "outputs/init-images",
    "save_to_dirs": True,
    "grid_save_to_dirs": True,
    "directories_filename_pattern": "[date]",
    "ESRGAN_tile": 192,
    "ESRGAN_tile_overlap": 8,
    "face_restoration_model": "CodeFormer",
    "code_former_weight": 0.5,
    "face_restoration_unload": False,
    "sd_checkpoints_keep_in_cpu": True,
    "sd_checkpoint_cache": 0,
    "sd_unet": "Automatic",
    "enable_quantization": False,
    "enable_emphasis": True,
    "enable_batch_seeds": True,
    "comma_padding_backtrack": 20,
    "upcast_attn": False,
    "tiling": False,
    "sdxl_crop_top": 0,
    "sdxl_crop_left": 0,
    "sd_vae_checkpoint_cache": 0,
    "sd_vae_overrides_per_model_preferences": True,
    "auto_vae_precision": True,
    "inpainting_mask_weight": 1.0,
    "initial_noise_multiplier": 1.0,
    "img2img_extra_noise": 0.0,
    "img2img_color_correction": False,
    "img2img_fix_steps": False,
    "img2img_background_color": "#ffffff",
    "return_mask": False,
    "return_mask_composite": False,
    "cross_attention_optimization": "Automatic",
    "s_min_uncond": 0.0,
    "token_merging_ratio": 0.0,
    "token_merging_ratio_img2img": 0.0,
    "token_merging_ratio_hr": 0.0,
    "pad_cond_uncond": False,
    "persistent_cond_cache": True,
    "batch_cond_uncond": True,
    "use_old_emphasis_implementation": False,
    "use_old_karras_scheduler_sigmas": False,
    "no_dpmpp_sde_batch_determinism": False,
    "use_old_hires_fix_width_height": False,
    "hires_fix_use_firstpass_conds": False,
    "use_old_scheduling": False,
    "extra_networks_default_multiplier": 1.0,
    "sd_hypernetwork": "None",
    "do_not_show_images": False,
    "send_seed": True,
    "send_size": True,
    "show_progress_in_title": True,
    "quicksettings_list": ["sd_model_checkpoint"],
    "add_model_hash_to_info": True,
    "add_model_name_to_info": True,
    "add_version_to_infotext": True,
    "show_progressbar": True,
    "live_previews_enable": True,
    "show_progress_grid": True,
    "show_progress_every_n_steps": 10,
    "live_preview_content": "Prompt",
    "live_preview_refresh_period": 1000,
    "hide_samplers": [],
    "eta_ddim": 0.0,
    "eta_ancestral": 1.0,
    "ddim_discretize": "uniform",
    "s_churn": 0.0,
    "s_tmin": 0.0,
    "s_tmax": 0.0,
    "s_noise": 1.0,
    "k_sched_type": "Automatic",
    "sigma_min": 0.0,
    "sigma_max": 0.0,
    "rho": 0.0,
    "always_discard_next_to_last_sigma": False,
    "uni_pc_variant": "bh1",
    "uni_pc_skip_type": "time_uniform",
    "uni_pc_order": 3,
    "uni_pc_lower_order_final": True,
    "upscaling_max_images_in_cache": 5,
    "interrogate_keep_models_in_memory": False,
}

DEFAULTS: dict[str, Any] = {
    "sd_model_checkpoint": None,
    "sd_vae": "Automatic",
    "CLIP_stop_at_last_layers": 1,
    "samples_format": "png",
    "jpeg_quality": 80,
    "webp_lossless": False,
    "enable_pnginfo": True,
    "eta_noise_seed_delta": 0,
    **FIXED,
    **KEPT,
}


def _bad(message: str, param: str) -> ApiError:
    return ApiError(422, message, code="invalid_request", param=param)


def _same_type(value: Any, default: Any) -> bool:
    if default is None:
        return value is None or isinstance(value, str)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):  # A1111 takes a float for an int setting
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, type(default))


def check(key: str, value: Any, param: str) -> Any:
    """A posted value of a known key, checked as this server uses it (4xx otherwise); the value to store."""
    if not _same_type(value, DEFAULTS[key]) or (isinstance(value, float) and not math.isfinite(value)):
        raise _bad(f"{key} must be a {type(DEFAULTS[key]).__name__}, like its default {DEFAULTS[key]!r}", param)
    if key == "samples_format" and value.lower() not in SAMPLES_FORMATS:
        raise _bad(f"samples_format must be one of {', '.join(SAMPLES_FORMATS)}", param)
    if key == "jpeg_quality" and (value != int(value) or not 1 <= value <= 100):
        raise _bad("jpeg_quality must be an integer from 1 to 100", param)
    if key == "eta_noise_seed_delta" and (value != int(value) or not 0 <= value < 2**32):
        raise _bad("eta_noise_seed_delta must be an integer from 0 to 4294967295", param)
    if key == "CLIP_stop_at_last_layers" and (value != int(value) or not 1 <= value <= 12):
        raise _bad("CLIP_stop_at_last_layers must be an integer from 1 to 12", param)
    if key in ("jpeg_quality", "eta_noise_seed_delta", "CLIP_stop_at_last_layers"):
        return int(value)
    return value.lower() if key == "samples_format" else value


def unknown(body: dict[str, Any]) -> list[str]:
    return sorted(k for k in body if k not in DEFAULTS)


def encode(key: str, value: Any) -> str:
    return str(value) if key in _PLAIN else orjson.dumps(value).decode()


def decode(saved: dict[str, str]) -> dict[str, Any]:
    """The token's stored options (known keys only), as values."""
    values: dict[str, Any] = {}
    for key, raw in saved.items():
        if key not in DEFAULTS or key in FIXED:
            continue
        if key == "CLIP_stop_at_last_layers":
            values[key] = int(raw)
        elif key in _PLAIN:
            values[key] = raw
        else:
            try:
                values[key] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
    return values


def current(checkpoint: dict[str, Any] | None, saved: dict[str, str]) -> dict[str, Any]:
    """`GET /sdapi/v1/options`: A1111's defaults under the token's stored values, the checkpoint it gets."""
    values = {**DEFAULTS, **decode(saved)}
    values["sd_model_checkpoint"] = checkpoint.get("title") if checkpoint else None
    values["sd_checkpoint_hash"] = checkpoint.get("sha256") if checkpoint else None
    return values


def output(options: dict[str, Any]) -> dict[str, Any]:
    """The image encoding options of a job, from the token's options over A1111's defaults."""
    values = {**DEFAULTS, **options}
    fmt = str(values["samples_format"]).lower()
    return {
        "samples_format": "jpeg" if fmt == "jpg" else fmt,
        "jpeg_quality": int(values["jpeg_quality"]),
        "webp_lossless": bool(values["webp_lossless"]),
        "enable_pnginfo": bool(values["enable_pnginfo"]),
    }
