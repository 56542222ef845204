"""The diffusers engine: Stable Diffusion checkpoints, LoRAs, VAEs and ControlNets of an A1111 models folder,
one generation at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from graycat.images import controlnets, loras, vaes
from graycat.images.checkpoints import Checkpoint, scan
from graycat.images.params import GenerationParams
from graycat.images.results import result_body
from graycat.jobs import Job
from graycat.workers.engines.base import Emit

log = logging.getLogger(__name__)


class DiffusersEngine:
    """Serves every checkpoint of `models_dir`; keeps the last one used loaded (switching loads another)."""

    kind = "sd"
    slots = 1

    def __init__(self, models_dir: Path, *, device: str = "auto", dtype: str = "auto", threads: int | None = None,
                 attention_slicing: bool = False, vae_tiling: bool = False) -> None:
        self.checkpoints: dict[str, Checkpoint] = {c.model_name: c for c in scan(models_dir)}
        self.loras = loras.scan(models_dir)
        self.vaes = vaes.scan(models_dir)
        self.controlnets = controlnets.scan(models_dir)
        if not self.checkpoints:
            raise FileNotFoundError(f"no checkpoints (.safetensors, .ckpt or diffusers folders) in "
                                    f"{models_dir / 'models' / 'Stable-diffusion'}")
        self._options = {"device": device, "dtype": dtype, "threads": threads,
                         "attention_slicing": attention_slicing, "vae_tiling": vae_tiling}
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="diffusers")  # torch work runs here, in order
        self._scratch = tempfile.TemporaryDirectory(prefix="graycat-sd-")  # configs of single-file checkpoints
        self._device: Any = None
        self._loaded: tuple[str, Any] | None = None
        self._vae: tuple[str, Any] | None = None
        self._controls: dict[str, Any] = {}  # small next to a checkpoint: kept once loaded
        self._served = 0
        self._figures = {"images_total": 0, "diffusion_steps_total": 0, "diffusion_seconds_total": 0.0}

    def models(self) -> dict[str, dict[str, Any]]:
        return {name: {**c.info(), "slots": self.slots, "loras": sorted(self.loras), "vaes": sorted(self.vaes),
                       "controlnets": sorted(self.controlnets)} for name, c in self.checkpoints.items()}

    def stats(self) -> dict[str, Any]:
        return {"served": self._served, "loaded": self._loaded[0] if self._loaded else None,
                "device": self._device.name if self._device else None, "diffusers": dict(self._figures)}

    async def start(self) -> None:
        """Import torch, pick the device and load the first checkpoint, so a broken setup fails at start."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._setup)

    def _setup(self) -> None:
        import torch
        from diffusers.utils import logging as diffusers_logging
        from transformers import logging as transformers_logging

        from graycat.workers.engines.sd_pipelines import Device

        for library in (diffusers_logging, transformers_logging):
            library.set_verbosity_error()
            library.disable_progress_bar()
        if self._options["threads"]:
            torch.set_num_threads(int(self._options["threads"]))
        name = self._options["device"]
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = self._options["dtype"]
        if dtype == "auto":
            dtype = "float16" if name.startswith("cuda") else "float32"
        self._device = Device(name, getattr(torch, dtype), bool(self._options["attention_slicing"]),
                              bool(self._options["vae_tiling"]))
        self._pipeline(next(iter(self.checkpoints)))

    def _pipeline(self, name: str) -> Any:
        from graycat.workers.engines.sd_pipelines import load

        if self._loaded is None or self._loaded[0] != name:
            self._loaded = None  # free the old one before loading the next
            log.info("loading checkpoint %s on %s", name, self._device.name)
            self._loaded = (name, load(self.checkpoints[name], self._device, Path(self._scratch.name)))
        return self._loaded[1]

    def _vae_module(self, name: str | None) -> Any:
        from graycat.workers.engines.sd_pipelines import load_vae

        if name is None:
            return None
        if self._vae is None or self._vae[0] != name:
            self._vae = (name, load_vae(self.vaes[name], self._device, Path(self._scratch.name)))
        return self._vae[1]

    def _control_models(self, params: GenerationParams) -> list[Any]:
        from graycat.workers.engines.sd_pipelines import load_controlnet

        for unit in params.controlnets:
            if unit.model not in self._controls:
                self._controls[unit.model] = load_controlnet(self.controlnets[unit.model], self._device)
        return [self._controls[unit.model] for unit in params.controlnets]

    def _generate(self, params: GenerationParams, emit: Emit, loop: asyncio.AbstractEventLoop,
                  stop: threading.Event) -> bytes:
        from graycat.workers.engines.sd_pipelines import generate, loras_applied, vae_applied

        began = time.monotonic()

        def progress(job_no: int, step: int, steps: int) -> None:
            self._figures["diffusion_steps_total"] += 1
            chunk = orjson.dumps({"job_no": job_no, "job_count": params.n_iter, "step": step, "steps": steps})
            loop.call_soon_threadsafe(emit, chunk)

        prompt, wanted = loras.parse(params.prompt)  # the infotext keeps the tags, as A1111's does
        pipe = self._pipeline(params.checkpoint)
        with vae_applied(pipe, self._vae_module(params.vae)), \
                loras_applied(pipe, [(self.loras[name], weight) for name, weight in wanted.items()]):
            try:
                images = generate(pipe, replace(params, prompt=prompt), progress, stop, self._control_models(params))
            finally:
                self._figures["diffusion_seconds_total"] += time.monotonic() - began
        self._figures["images_total"] += len(images)
        return result_body(params, self.checkpoints[params.checkpoint].info(), images)

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        """Generate in the torch thread; a cancelled task stops it at the next step, then ends cancelled."""
        params = GenerationParams.from_json(job.body)
        missing = [f"LoRA '{n}'" for n in loras.parse(params.prompt)[1] if n not in self.loras]
        if params.checkpoint not in self.checkpoints:
            missing.insert(0, f"checkpoint '{params.checkpoint}'")
        if params.vae is not None and params.vae not in self.vaes:
            missing.append(f"VAE '{params.vae}'")
        missing += [f"ControlNet '{u.model}'" for u in params.controlnets if u.model not in self.controlnets]
        if missing:
            return 404, orjson.dumps({"error": {"code": 404, "message": f"{', '.join(missing)} not served by "
                                                "this worker", "type": "not_found_error"}})
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        future = loop.run_in_executor(self._thread, self._generate, params, emit, loop, stop)
        try:
            body = await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            with contextlib.suppress(Exception):
                await future  # the thread ends within one step; the next job must not start before
            raise
        self._served += 1
        return 200, body

    async def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)
        self._loaded = None
        self._scratch.cleanup()
