"""`graycat worker sd`: a worker for image jobs on diffusers, one pool per checkpoint of the models folder."""

from __future__ import annotations

from graycat.config import Settings
from graycat.workers.engines.diffusers import DiffusersEngine
from graycat.workers.run import run_worker


async def serve(settings: Settings) -> None:
    """Run one SD worker until SIGTERM / SIGINT, then finish the job it holds."""
    if settings.sd_models_dir is None:
        raise FileNotFoundError("no models folder: pass --models-dir DIR or set SD_MODELS_DIR")
    engine = DiffusersEngine(settings.sd_models_dir, device=settings.sd_device, dtype=settings.sd_dtype,
                             threads=settings.sd_threads, attention_slicing=settings.sd_attention_slicing,
                             vae_tiling=settings.sd_vae_tiling, preview_every=settings.sd_preview_every)
    await engine.start()
    await run_worker(settings, engine, ["sd"])
