"""A1111's descriptive routes with what holds here: `cmd-flags` and `scripts`."""

from __future__ import annotations

from typing import Any

from graycat.config import Settings

SCRIPTS = {"txt2img": [], "img2img": ["poor man's outpainting", "sd upscale"]}


def cmd_flags(settings: Settings) -> dict[str, Any]:
    """A1111's command-line flags (argparse `dest` names) that describe this gateway; folders are None since
    the models live on the workers, never on the api."""
    return {
        "api": True,
        "nowebui": True,
        "api_auth": None,
        "api_log": False,
        "api_server_stop": False,
        "listen": settings.host not in ("127.0.0.1", "localhost", "::1"),
        "server_name": settings.host,
        "port": settings.port,
        "share": False,
        "freeze_settings": False,
        "hide_ui_dir_config": True,
        "enable_insecure_extension_access": False,
        "skip_version_check": True,
        "no_download_sd_model": True,
        "do_not_download_clip": True,
        "data_dir": None,
        "models_dir": None,
        "ckpt_dir": None,
        "vae_dir": None,
        "lora_dir": None,
        "embeddings_dir": None,
        "hypernetwork_dir": None,
        "esrgan_models_path": None,
        "realesrgan_models_path": None,
        "gfpgan_models_path": None,
        "codeformer_models_path": None,
        "medvram": False,
        "lowvram": False,
        "xformers": False,
    }
