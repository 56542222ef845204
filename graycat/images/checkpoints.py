"""Checkpoints of an A1111-style models folder, and the names A1111 lets a client pick one by."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One model of the folder: a single-file checkpoint, or a diffusers folder."""

    path: Path
    relative: str  # the path under the Stable-diffusion folder, as A1111 names it
    sha256: str | None  # of the file; None for diffusers folders
    family: str | None = None  # graycat/images/families.py Family.name, once the worker has read it
    context: int | None = None  # the UNet's cross-attention width, which its LoRAs must match

    @property
    def model_name(self) -> str:
        """A1111's `model_name`: the relative name without extension, `/` and `\\` replaced by `_`."""
        stem = self.relative
        for suffix in CHECKPOINT_SUFFIXES:
            stem = stem.removesuffix(suffix)
        return stem.replace("/", "_").replace("\\", "_")

    @property
    def short_hash(self) -> str | None:
        return self.sha256[:10] if self.sha256 else None

    @property
    def title(self) -> str:
        return f"{self.relative} [{self.short_hash}]" if self.short_hash else self.relative

    def info(self) -> dict[str, Any]:
        """What the worker announces about it (the api's /sdapi/v1/sd-models and name lookups read this)."""
        return {
            "kind": "sd",
            "title": self.title,
            "model_name": self.model_name,
            "hash": self.short_hash,
            "sha256": self.sha256,
            "filename": str(self.path.resolve()),
            "config": None,
            "family": self.family,
            "context": self.context,
        }


def checkpoints_path(models_dir: Path) -> Path:
    """Where an A1111 models folder keeps its checkpoints: `DIR/models/Stable-diffusion`."""
    return models_dir / "models" / "Stable-diffusion"


def checkpoints_folder(models_dir: Path) -> Path:
    """`DIR/models/Stable-diffusion`; FileNotFoundError naming the expected layout when absent."""
    folder = checkpoints_path(models_dir)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no checkpoint folder {folder} (expected the A1111 layout "
            "DIR/models/Stable-diffusion holding .safetensors/.ckpt files or diffusers folders)"
        )
    return folder


def any_present(models_dir: Path) -> bool:
    """Whether the folder holds a checkpoint, without hashing anything (for `graycat up`)."""
    folder = checkpoints_path(models_dir)
    return folder.is_dir() and any(
        p.suffix in CHECKPOINT_SUFFIXES or p.name == "model_index.json" for p in folder.rglob("*")
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


HashCache = dict[tuple[Path, int, int], str]
"""(path, size, mtime in ns) -> sha256 of files already hashed, so a rescan hashes only new or changed files."""


def _cached_sha256(path: Path, cache: HashCache | None) -> str:
    if cache is None:
        return _sha256(path)
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in cache:
        cache[key] = _sha256(path)
    return cache[key]


def scan(models_dir: Path, hashes: HashCache | None = None) -> list[Checkpoint]:
    """The folder's checkpoints, sorted by name: files (hashed; through `hashes` when given) and diffusers
    folders (with model_index.json)."""
    folder = checkpoints_folder(models_dir)
    found: list[Checkpoint] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if any(c.path.is_dir() and c.path in path.parents for c in found):  # a diffusers folder's parts
            continue
        if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
            found.append(Checkpoint(path, relative, _cached_sha256(path, hashes)))
        elif path.is_dir() and (path / "model_index.json").is_file() and (path / "unet").is_dir():
            found.append(Checkpoint(path, relative, None))
    return found


def aliases(info: dict[str, Any]) -> Iterable[str]:
    """Every name A1111 accepts for a checkpoint: title, model_name, relative name, file stem, hashes."""
    title, name = str(info.get("title") or ""), str(info.get("model_name") or "")
    relative = title.rsplit(" [", 1)[0] if title.endswith("]") else title
    stem = Path(relative).name
    for suffix in CHECKPOINT_SUFFIXES:
        stem = stem.removesuffix(suffix)
    yield from (title, name, relative, stem)
    if short := info.get("hash"):
        yield from (str(short), f"{relative} [{short}]", f"{stem} [{short}]", str(info.get("sha256") or ""))


def find(name: str, models: dict[str, dict[str, Any]]) -> str | None:
    """The served model name (`model_name`) that `name` means among announced SD models, or None."""
    name = name.strip()
    if name in models:
        return name
    for model_name, info in models.items():
        if name in aliases(info):
            return model_name
    return None
