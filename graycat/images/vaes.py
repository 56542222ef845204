"""Standalone VAEs of the A1111 folder (`models/VAE`), chosen by A1111's `sd_vae` option."""

from __future__ import annotations

from pathlib import Path

SUFFIXES = (".safetensors",)
CHECKPOINT_VAE = frozenset({"", "automatic", "none"})  # A1111's names for "the checkpoint's own VAE"


def scan(models_dir: Path) -> dict[str, Path]:
    """File name -> file of each VAE in `DIR/models/VAE` (A1111 names them by file name)."""
    folder = models_dir / "models" / "VAE"
    if not folder.is_dir():
        return {}
    return {p.name: p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in SUFFIXES}


def find(name: str | None, available: list[str]) -> str | None:
    """The VAE file name `name` means (file name or stem); None for the checkpoint's own; KeyError if unknown."""
    if name is None or name.strip().lower() in CHECKPOINT_VAE:
        return None
    for candidate in available:
        if name in (candidate, Path(candidate).stem):
            return candidate
    raise KeyError(name)
