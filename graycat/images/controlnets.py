"""ControlNet models of the A1111 folder (`models/ControlNet`), as the A1111 ControlNet extension names them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def scan(models_dir: Path) -> dict[str, Path]:
    """Folder name -> folder of each diffusers-format ControlNet (config.json and weights) in `models/ControlNet`."""
    folder = models_dir / "models" / "ControlNet"
    if not folder.is_dir():
        return {}
    return {
        p.parent.name: p.parent
        for p in sorted(folder.rglob("config.json"))
        if any(p.parent.glob("diffusion_pytorch_model.*"))
    }


def find(name: str, available: list[str]) -> str | None:
    """The ControlNet `name` means: its name, or the extension's `name [hash]` form."""
    bare = name.rsplit(" [", 1)[0].strip() if name.endswith("]") else name.strip()
    return bare if bare in available else None


def info(folder: Path) -> dict[str, Any]:
    """What the api checks a ControlNet against a checkpoint with: its cross-attention width (None if unread)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {"context": None}
    width = config.get("cross_attention_dim")
    return {"context": width if isinstance(width, int) else None}
