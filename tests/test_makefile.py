"""`make install-sd` picks torch's CPU build where no NVIDIA GPU answers `nvidia-smi`, the CUDA build where one
does, and TORCH_BUILD overrides (dry runs: `make -n` prints the commands without running them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def install_sd(tmp_path: Path, nvidia_smi: str, *variables: str) -> str:
    """The commands of `make install-sd` (into a venv that does not exist yet) on a machine whose `nvidia-smi`
    is the shell script `nvidia_smi`."""
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    (tools / "nvidia-smi").write_text(f"#!/bin/sh\n{nvidia_smi}\n")
    (tools / "nvidia-smi").chmod(0o755)
    result = subprocess.run(
        ["make", "-n", "install-sd", f"VENV={tmp_path / 'venv'}", *variables],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout + result.stderr


def torch_lines(output: str) -> list[str]:
    return [
        line for line in output.splitlines() if "pip install" in line and "torch==" in line and "open-clip" not in line
    ]


NO_GPU = "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver' >&2; exit 9"
GPU = "echo 'GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)'"


def test_no_gpu_gets_the_cpu_build(tmp_path: Path) -> None:
    [line] = torch_lines(install_sd(tmp_path, NO_GPU))
    assert "torch==2.13.0+cpu" in line and "https://download.pytorch.org/whl/cpu" in line


def test_a_gpu_gets_the_cuda_build(tmp_path: Path) -> None:
    [line] = torch_lines(install_sd(tmp_path, GPU))
    assert "torch==2.13.0" in line and "+cpu" not in line and "whl/cpu" not in line


def test_torch_build_overrides_the_detection(tmp_path: Path) -> None:
    [line] = torch_lines(install_sd(tmp_path, GPU, "TORCH_BUILD=cpu"))
    assert "torch==2.13.0+cpu" in line
    [line] = torch_lines(install_sd(tmp_path, NO_GPU, "TORCH_BUILD=cuda"))
    assert "+cpu" not in line
    assert "TORCH_BUILD must be cpu or cuda, not 'rocm'" in install_sd(tmp_path, NO_GPU, "TORCH_BUILD=rocm")
