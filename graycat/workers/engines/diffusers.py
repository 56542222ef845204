"""The diffusers engine: Stable Diffusion checkpoints, LoRAs, VAEs, ControlNets and ESRGAN-family upscalers of an
A1111 models folder, one job (generation or extras upscale) at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from graycat.images import codec, controlnets, extras, loras, upscalers, vaes
from graycat.images.checkpoints import Checkpoint, HashCache, scan
from graycat.images.params import GenerationParams
from graycat.images.results import result_body
from graycat.jobs import Job, error_body
from graycat.workers.engines.base import Emit

if TYPE_CHECKING:
    from PIL import Image

    from graycat.workers.engines.esrgan import Spec, Specs
    from graycat.workers.engines.sd_pipelines import Skip

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Files:
    """What one job runs on."""

    checkpoint: Checkpoint
    refiner: Checkpoint | None
    loras: list[tuple[Path, float]]
    vae: Path | None
    controlnets: list[Path]


class DiffusersEngine:
    """Serves every checkpoint of `models_dir`; keeps the `loaded_models` last used loaded (switching to another
    loads it, letting the least recently used go). Every `preview_every` steps (0: never) a progress event carries
    a preview of the image being made."""

    kind = "sd"
    slots = 1

    def __init__(
        self,
        models_dir: Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        threads: int | None = None,
        attention_slicing: bool = False,
        vae_tiling: bool = False,
        preview_every: int = 0,
        loaded_models: int = 1,
    ) -> None:
        self.models_dir = models_dir
        self._hashes: HashCache = {}
        self._probes: dict[tuple[Path, int, int], str] = {}  # SD 2.x files' predictions, found by their weights
        self.checkpoints: dict[str, Checkpoint] = {}
        self.loras: dict[str, Path] = {}
        self.vaes: dict[str, Path] = {}
        self.controlnets: dict[str, Path] = {}
        self._upscaler_specs: Specs = {}  # per file version
        self.upscalers: dict[str, tuple[Path, Spec]] = {}
        self._scan()
        if not self.checkpoints:
            raise FileNotFoundError(
                f"no checkpoints (.safetensors, .ckpt or diffusers folders) in "
                f"{models_dir / 'models' / 'Stable-diffusion'}"
            )
        self._options = {
            "device": device,
            "dtype": dtype,
            "threads": threads,
            "attention_slicing": attention_slicing,
            "vae_tiling": vae_tiling,
        }
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="diffusers")  # torch work runs here, in order
        self._scratch = tempfile.TemporaryDirectory(prefix="graycat-sd-")  # configs of single-file checkpoints
        self._device: Any = None
        self._models: OrderedDict[str, tuple[Checkpoint, Any]] = OrderedDict()  # the most recently used last
        self._keep = max(1, loaded_models)
        self._refiner: tuple[Checkpoint, Any] | None = None
        self._vae: tuple[tuple[Path, float], Any] | None = None
        self._controls: dict[Path, Any] = {}  # small next to a checkpoint: kept once loaded
        self._upscaler_models: OrderedDict[tuple[Path, Spec], Any] = OrderedDict()  # the most recently used last
        self._served = 0
        self._figures = {"images_total": 0, "diffusion_steps_total": 0, "diffusion_seconds_total": 0.0}
        self.preview_every = preview_every
        self._skips: dict[str, Skip] = {}  # job id -> its skip requests, while it runs

    def _scan(self) -> None:
        """Read the models folder: checkpoints (hashing only new or changed files; each one's family read from
        its tensors or configs), LoRAs and VAEs (with the family they fit), ControlNets."""
        from graycat.workers.engines import esrgan
        from graycat.workers.engines.sd_config import describe, lora_info, vae_latent_space

        found: dict[str, Checkpoint] = {}
        for checkpoint in scan(self.models_dir, self._hashes):
            try:
                found[checkpoint.model_name] = describe(checkpoint, self._probes)
            except Exception as exc:  # of no family served here, or unreadable (a broken or partial file)
                log.warning("not serving checkpoint %s: %s", checkpoint.path, exc)
        live = {c.path for c in found.values()}
        for key in [k for k in self._hashes if k[0] not in live]:
            del self._hashes[key]
        self.checkpoints, self.loras = found, loras.scan(self.models_dir)
        self.vaes, self.controlnets = vaes.scan(self.models_dir), controlnets.scan(self.models_dir)
        self._lora_info = {name: lora_info(path) for name, path in self.loras.items()}
        self._vae_spaces = {name: vae_latent_space(path) for name, path in self.vaes.items()}
        self._control_info = {name: controlnets.info(path) for name, path in self.controlnets.items()}
        self.upscalers = esrgan.scan(self.models_dir, self._upscaler_specs)

    async def rescan(self) -> None:
        """Read the folder again (A1111's refresh-checkpoints / -loras / -vae), beside a running job; a
        checkpoint whose file changed is loaded anew by its next job."""
        await asyncio.to_thread(self._scan)
        if not self.checkpoints:
            log.warning("no checkpoints left in %s: this worker serves none", self.models_dir)

    def models(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                **c.info(),
                "slots": self.slots,
                "loras": sorted(self.loras),
                "lora_info": self._lora_info,
                "vaes": sorted(self.vaes),
                "vae_spaces": self._vae_spaces,
                "controlnets": sorted(self.controlnets),
                "controlnet_info": self._control_info,
                "upscalers": [
                    {
                        "name": name,
                        "filename": str(path.relative_to(self.models_dir / "models")),
                        "scale": spec.scale,
                        "arch": spec.arch,
                    }
                    for name, (path, spec) in sorted(self.upscalers.items())
                ],
            }
            for name, c in self.checkpoints.items()
        }

    def stats(self) -> dict[str, Any]:
        return {
            "served": self._served,
            "loaded": next(reversed(self._models), None),  # the checkpoint of the last job
            "loaded_models": list(reversed(self._models)),  # all held, the most recently used first
            "refiner": self._refiner[0].model_name if self._refiner else None,
            "device": self._device.name if self._device else None,
            "images": dict(self._figures),
        }

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
        name = str(self._options["device"])
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = str(self._options["dtype"])
        if dtype == "auto":
            dtype = "float16" if name.startswith("cuda") else "float32"
        self._device = Device(
            name, getattr(torch, dtype), bool(self._options["attention_slicing"]), bool(self._options["vae_tiling"])
        )
        self._pipeline(next(iter(self.checkpoints.values())))

    def _pipeline(self, checkpoint: Checkpoint) -> Any:
        """The pipeline of `checkpoint`, loaded unless held (its file unchanged), now the most recently used."""
        name = checkpoint.model_name
        held = self._models.pop(name, None)
        if held is not None and held[0] == checkpoint:
            self._models[name] = held
            return held[1]
        del held  # its file changed: the old weights go first
        if self._refiner is not None and self._refiner[0] == checkpoint:  # the refiner becomes a model
            pipe, self._refiner = self._refiner[1], None
        else:
            while len(self._models) >= self._keep:  # free the least recently used before loading
                self._models.popitem(last=False)
            pipe = self._load(checkpoint, "checkpoint")
        self._models[name] = (checkpoint, pipe)
        while len(self._models) > self._keep:
            self._models.popitem(last=False)
        return pipe

    def _load(self, checkpoint: Checkpoint, what: str) -> Any:
        """Load a checkpoint; when the device runs out of memory, let every other model go and try once more."""
        import torch

        from graycat.workers.engines.sd_pipelines import load

        log.info("loading %s %s on %s", what, checkpoint.model_name, self._device.name)
        try:
            return load(checkpoint, self._device, Path(self._scratch.name))
        except torch.OutOfMemoryError:
            if not self._models and self._refiner is None:
                raise
            log.warning(
                "out of device memory loading %s: letting %s go",
                checkpoint.model_name,
                ", ".join([*self._models, *([self._refiner[0].model_name] if self._refiner else [])]),
            )
            self._models.clear()
            self._refiner = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return load(checkpoint, self._device, Path(self._scratch.name))

    def _refiner_pipeline(self, checkpoint: Checkpoint | None) -> Any:
        """The refiner a job names, kept loaded beside the checkpoint while jobs use it (None: none, and the
        last one is let go)."""
        if checkpoint is None:
            self._refiner = None
            return None
        held = self._models.get(checkpoint.model_name)
        if held is not None and held[0] == checkpoint:
            return held[1]
        if self._refiner is None or self._refiner[0] != checkpoint:
            self._refiner = None
            self._refiner = (checkpoint, self._load(checkpoint, "refiner"))
        return self._refiner[1]

    def _vae_module(self, path: Path | None, scaling: float) -> Any:
        """The VAE of `path` for latents scaled by `scaling` (the checkpoint's own VAE's)."""
        from graycat.workers.engines.sd_pipelines import load_vae

        if path is None:
            return None
        if self._vae is None or self._vae[0] != (path, scaling):
            self._vae = ((path, scaling), load_vae(path, self._device, Path(self._scratch.name), scaling))
        return self._vae[1]

    def _control_models(self, paths: list[Path]) -> list[Any]:
        from graycat.workers.engines.sd_pipelines import load_controlnet

        for path in paths:
            if path not in self._controls:
                self._controls[path] = load_controlnet(path, self._device)
        return [self._controls[path] for path in paths]

    def _model_upscaler(self, name: str) -> extras.ModelUpscaler:
        """The ESRGAN-family upscaler `name`, loaded on the worker's device on first use (the last 2 kept)."""
        from graycat.workers.engines import esrgan

        path, spec = self.upscalers[name]
        key = (path, spec)
        if key in self._upscaler_models:
            self._upscaler_models.move_to_end(key)
        else:
            while len(self._upscaler_models) >= 2:
                self._upscaler_models.popitem(last=False)
            log.info("loading upscaler %s on %s", name, self._device.name)
            self._upscaler_models[key] = esrgan.load(path, self._device.name, self._device.dtype)[1]
        model, device = self._upscaler_models[key], self._device

        def run(image: Image.Image) -> Image.Image:
            return esrgan.upscale(model, spec, image, device=device.name, dtype=device.dtype)

        return extras.ModelUpscaler(spec.scale, run)

    def _missing_upscalers(self, names: list[str]) -> list[str]:
        return [f"upscaler '{n}'" for n in names if n not in upscalers.UPSCALERS and n not in self.upscalers]

    def _files(self, params: GenerationParams) -> _Files | bytes:
        """The files a job uses, taken now (a rescan may change the folder meanwhile); the error body when one
        is not served here."""
        wanted = loras.parse(params.prompt)[1]
        missing = [f"LoRA '{n}'" for n in wanted if n not in self.loras]
        if params.checkpoint not in self.checkpoints:
            missing.insert(0, f"checkpoint '{params.checkpoint}'")
        if params.refiner is not None and params.refiner not in self.checkpoints:
            missing.insert(0, f"refiner checkpoint '{params.refiner}'")
        if params.vae is not None and params.vae not in self.vaes:
            missing.append(f"VAE '{params.vae}'")
        missing += [f"ControlNet '{u.model}'" for u in params.controlnets if u.model not in self.controlnets]
        missing += self._missing_upscalers(
            [params.hires.upscaler] if params.hires else [params.sd_upscale.upscaler] if params.sd_upscale else []
        )
        if missing:
            return error_body(404, f"{', '.join(missing)} not served by this worker", "not_found_error")
        return _Files(
            self.checkpoints[params.checkpoint],
            self.checkpoints[params.refiner] if params.refiner is not None else None,
            [(self.loras[n], w) for n, w in wanted.items()],
            self.vaes[params.vae] if params.vae else None,
            [self.controlnets[u.model] for u in params.controlnets],
        )

    def skip(self, job_id: str) -> None:
        """End the running job's current iteration at its next step; its next iterations run."""
        if (skip := self._skips.get(job_id)) is not None:
            skip.request()

    def _generate(
        self,
        params: GenerationParams,
        files: _Files,
        emit: Emit,
        loop: asyncio.AbstractEventLoop,
        stop: threading.Event,
        skip: Skip,
    ) -> bytes:
        from graycat.workers.engines.sd_pipelines import generate, loras_applied, vae_applied

        def progress(job_no: int, step: int, steps: int, preview: Image.Image | None) -> None:
            self._figures["diffusion_steps_total"] += 1
            event: dict[str, Any] = {"job_no": job_no, "job_count": params.n_iter, "step": step, "steps": steps}
            if preview is not None:
                event["preview"] = codec.encode_png(preview)
            loop.call_soon_threadsafe(emit, orjson.dumps(event))

        prompt = loras.parse(params.prompt)[0]  # the infotext keeps the tags, as A1111's does
        pipe = self._pipeline(files.checkpoint)
        refiner = self._refiner_pipeline(files.refiner)
        vae = self._vae_module(files.vae, pipe.vae.config.scaling_factor)
        with vae_applied(pipe, vae), loras_applied(pipe, files.loras):
            controls = self._control_models(files.controlnets)
            began = time.monotonic()  # generation time only: loading models is not counted
            try:
                images = generate(
                    pipe,
                    replace(params, prompt=prompt),
                    progress,
                    stop,
                    controls,
                    skip,
                    self.preview_every,
                    refiner,
                    self._model_upscaler,
                )
            finally:
                self._figures["diffusion_seconds_total"] += time.monotonic() - began
        self._figures["images_total"] += len(images)
        return result_body(params, files.checkpoint.info(), images, skip.skipped)

    def _extras(self, job: extras.ExtrasJob) -> bytes:
        began = time.monotonic()
        try:
            return extras.run_job(job, self._model_upscaler)
        finally:
            self._figures["upscale_seconds_total"] = (
                self._figures.get("upscale_seconds_total", 0.0) + time.monotonic() - began
            )

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        """Generate (or upscale, for an extras job) in the torch thread; a cancelled generation stops at the
        next step, then ends cancelled."""
        values = orjson.loads(job.body)  # several MB with its images: parsed once
        if values.get("mode") == extras.ExtrasJob.MODE:
            upscale = extras.ExtrasJob.from_dict(values)
            if missing := self._missing_upscalers(extras.uses_models(upscale.upscale)):
                return 404, error_body(404, f"{', '.join(missing)} not served by this worker", "not_found_error")
            body = await asyncio.get_running_loop().run_in_executor(self._thread, self._extras, upscale)
            self._served += 1
            return 200, body
        params = GenerationParams.from_dict(values)
        files = self._files(params)
        if isinstance(files, bytes):
            return 404, files
        from graycat.workers.engines.sd_pipelines import Skip

        loop = asyncio.get_running_loop()
        stop = threading.Event()
        self._skips[job.id] = skip = Skip()
        future = loop.run_in_executor(self._thread, self._generate, params, files, emit, loop, stop, skip)
        try:
            body = await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            with contextlib.suppress(Exception):
                await future  # the thread ends within one step; the next job must not start before
            raise
        finally:
            del self._skips[job.id]
        self._served += 1
        return 200, body

    async def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)
        self._models.clear()
        self._refiner = None
        self._scratch.cleanup()
