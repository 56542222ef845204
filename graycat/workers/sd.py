"""`graycat worker sd`: a worker for image jobs, one pool per checkpoint: on diffusers (the models folder) or
relayed to an external Automatic1111 WebUI."""

from __future__ import annotations

from graycat.config import Settings
from graycat.workers.engines.a1111_http import A1111HttpEngine
from graycat.workers.engines.base import Engine
from graycat.workers.engines.diffusers import DiffusersEngine
from graycat.workers.engines.loading import Loading
from graycat.workers.engines.process_engine import ProcessEngine
from graycat.workers.engines.sd_process import config
from graycat.workers.engines.supervisor import EngineProcess
from graycat.workers.run import run_worker


async def serve(settings: Settings) -> None:
    """Run one SD worker until SIGTERM / SIGINT, then finish the job it holds. The checkpoints of a models
    folder are announced as loading while torch and the first checkpoint load. The diffusers engine runs in a
    supervised child process (restarted when it crashes)."""
    engine: Engine
    if settings.sd_a1111_url:
        engine = A1111HttpEngine(settings.sd_a1111_url, previews=settings.sd_preview_every > 0)
        await engine.start()
        await run_worker(settings, engine, ["sd"])
    elif settings.sd_models_dir is None:
        raise FileNotFoundError(
            "no models folder: pass --models-dir DIR or set SD_MODELS_DIR (or relay to an "
            "A1111 WebUI with --a1111-url URL)"
        )
    else:
        scan = DiffusersEngine(
            settings.sd_models_dir,
            device=settings.sd_device,
            dtype=settings.sd_dtype,
            threads=settings.sd_threads,
            attention_slicing=settings.sd_attention_slicing,
            vae_tiling=settings.sd_vae_tiling,
            preview_every=settings.sd_preview_every,
            loaded_models=settings.sd_loaded_models,
        )
        models = scan.models()  # the child process serves these once loaded
        await scan.close()
        engine = ProcessEngine(
            "sd", EngineProcess("graycat.workers.engines.sd_process", [config(settings)], "diffusers")
        )
        try:
            await run_worker(settings, Loading("sd", models), ["sd"], _started(engine))
        finally:
            await engine.close()


async def _started(engine: ProcessEngine) -> Engine:
    await engine.start()
    return engine
