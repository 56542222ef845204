"""GPU readings through NVML for the worker's heartbeat: memory, utilisation, temperature per card.

On a machine without an NVIDIA driver NVML does not load, and the worker reports no GPUs.
"""

from __future__ import annotations

import logging
from typing import Any

import pynvml

log = logging.getLogger(__name__)


class GpuReader:
    """Reads every NVIDIA GPU the process can see; `read()` is empty when there is none."""

    def __init__(self) -> None:
        self._handles: list[Any] = []
        try:
            pynvml.nvmlInit()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except pynvml.NVMLError as exc:
            log.debug("no GPU readings: %s", exc)

    def read(self) -> list[dict[str, Any]]:
        cards = []
        for index, handle in enumerate(self._handles):
            try:
                memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                cards.append(
                    {
                        "index": index,
                        "name": pynvml.nvmlDeviceGetName(handle),
                        "memory_used_bytes": memory.used,
                        "memory_total_bytes": memory.total,
                        "utilization_ratio": pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100,
                        "temperature_celsius": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
                    }
                )
            except pynvml.NVMLError as exc:
                log.warning("GPU %d could not be read: %s", index, exc)
        return cards
