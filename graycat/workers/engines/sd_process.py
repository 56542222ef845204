"""`python -m graycat.workers.engines.sd_process CONFIG_JSON`: the diffusers engine in a process of its own, a
child of the SD worker, served over a Unix socket (engine_host.py). A native or CUDA crash ends only this
process."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from graycat.config import Settings
from graycat.logs import setup_logging
from graycat.workers.engines.base import Engine
from graycat.workers.engines.child import bind_to_parent
from graycat.workers.engines.engine_host import host


def config(settings: Settings) -> str:
    """The command-line argument that starts the engine `settings` describe in a child process."""
    assert settings.sd_models_dir is not None
    return orjson.dumps(
        {
            "models_dir": str(settings.sd_models_dir),
            "device": settings.sd_device,
            "dtype": settings.sd_dtype,
            "threads": settings.sd_threads,
            "attention_slicing": settings.sd_attention_slicing,
            "vae_tiling": settings.sd_vae_tiling,
            "loaded_models": settings.sd_loaded_models,
            "preview_every": settings.sd_preview_every,
            "log": [settings.log_level, settings.log_format],
        }
    ).decode()


async def _engine(options: dict[str, Any]) -> Engine:
    from graycat.workers.engines.diffusers import DiffusersEngine

    engine = DiffusersEngine(Path(options.pop("models_dir")), **options)
    await engine.start()
    return engine


def main(argv: list[str]) -> None:
    bind_to_parent()
    options: dict[str, Any] = orjson.loads(argv[0])
    setup_logging(*options.pop("log"))
    asyncio.run(host(lambda: _engine(options)))


if __name__ == "__main__":
    main(sys.argv[1:])
