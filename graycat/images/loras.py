"""A1111's LoRA prompt syntax: `<lora:name:weight>` (weight 1 when left out), and the Lora folder."""

from __future__ import annotations

import re
from pathlib import Path

_TAG = re.compile(r"<lora:([^:>]+)(?::([^:>]*))?(?::[^>]*)?>")
SUFFIXES = (".safetensors",)


def parse(prompt: str) -> tuple[str, dict[str, float]]:
    """The prompt without its LoRA tags, and name -> weight of each (the last tag of a name wins);
    ValueError for a weight that is not a number."""
    found: dict[str, float] = {}

    def take(match: re.Match[str]) -> str:
        name, weight = match[1].strip(), (match[2] or "1").strip()
        try:
            found[name] = float(weight)
        except ValueError:
            raise ValueError(f"LoRA '{name}': weight '{weight}' is not a number") from None
        return ""

    return _TAG.sub(take, prompt).strip(), found


def scan(models_dir: Path) -> dict[str, Path]:
    """name (file stem) -> file of each LoRA in `DIR/models/Lora`, sub-folders too."""
    folder = models_dir / "models" / "Lora"
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in SUFFIXES}
