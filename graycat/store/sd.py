"""`pull --sd`: image models into SD_MODELS_DIR's A1111 layout, the folders the SD worker reads: single-file
checkpoints, LoRAs and VAEs (.safetensors/.ckpt), and diffusers folders (a checkpoint's pipeline, a ControlNet)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from graycat.store import folder, hub
from graycat.store.download import Progress, download
from graycat.store.pull import pull
from graycat.store.refs import HubRef, parse
from graycat.store.remote import PullError

FOLDERS = {"checkpoint": "Stable-diffusion", "lora": "Lora", "vae": "VAE", "controlnet": "ControlNet"}
WEIGHTS = hub.IMAGE_WEIGHTS
FOLDER_FILES = (".json", ".txt", ".safetensors", ".model")  # what a diffusers folder needs: configs, tokenizer, weights
MARKERS = {"checkpoint": "model_index.json", "controlnet": "config.json"}  # at the root of a diffusers repository


def kind_folder(sd_models: Path, kind: str) -> Path:
    return sd_models / "models" / FOLDERS[kind]


def pull_sd(
    text: str, sd_models: Path, kind: str, *, sha256: str | None = None, progress: Progress | None = None
) -> Path:
    """The file (or diffusers folder) `text` names, checked and in place in the `kind` folder of `sd_models`."""
    ref = parse(text)
    if ref is None:
        raise PullError(
            f"{text!r} is not a reference: use hf:OWNER/REPO, hf:OWNER/REPO/path/file.safetensors or an https:// URL"
        )
    target = kind_folder(sd_models, kind)
    if isinstance(ref, HubRef) and ref.file is None:
        if ref.quant is not None:
            raise PullError(
                f"{text!r}: a tag chooses a GGUF quantisation; name the image model's file instead "
                f"(hf:{ref.repo}/path/file.safetensors)"
            )
        files = hub.listing(ref)
        chosen = _single_file(ref, files, kind)
        if chosen is None:
            return _pull_folder(ref, files, sd_models, kind, progress)
        ref = HubRef(ref.repo, None, chosen)
        text = str(ref)
    name = PurePosixPath((ref.file or "") if isinstance(ref, HubRef) else ref.file_name).name
    if kind == "controlnet":
        raise PullError(
            f"{name}: the SD worker reads ControlNets as diffusers folders (config.json and weights); "
            "pull the repository that holds one (hf:OWNER/REPO)"
        )
    if not name.endswith(WEIGHTS):
        raise PullError(f"{name} is no image model file (expected {' or '.join(WEIGHTS)})")
    return pull(text, target, sha256=sha256, progress=progress)


def _single_file(ref: HubRef, files: dict[str, tuple[int, str | None]], kind: str) -> str | None:
    """The repository's only weights file at its root; None for a diffusers repository of `kind` (a ControlNet's
    always, a pipeline's unless a single checkpoint file sits beside it)."""
    weights = sorted(p for p in files if "/" not in p and p.endswith(WEIGHTS))
    if MARKERS.get(kind) in files and (kind == "controlnet" or len(weights) != 1):
        return None
    if len(weights) == 1:
        return weights[0]
    if not weights:
        raise PullError(
            f"{ref.repo} holds no {kind} file ({' or '.join(WEIGHTS)} at its root)"
            + (" nor a diffusers folder" if kind in MARKERS else ""),
            404,
        )
    raise PullError(
        f"{ref.repo} holds {len(weights)} weights files ({', '.join(weights)}); name one (hf:{ref.repo}/{weights[0]})"
    )


def _pull_folder(
    ref: HubRef, files: dict[str, tuple[int, str | None]], sd_models: Path, kind: str, progress: Progress | None
) -> Path:
    """A diffusers repository as the folder named after it, assembled aside (an interrupted pull resumes file by
    file) and moved into place whole, so that a worker never reads half a pipeline."""
    name = ref.repo.split("/")[1]
    target = kind_folder(sd_models, kind) / name
    if target.is_dir():
        return target
    wanted = _folder_files(ref, files, kind)
    total = sum(files[p][0] for p in wanted)
    stage = sd_models / "models" / folder.PARTIAL_DIR / f"{kind}-{name}"
    done = 0
    for path in wanted:
        parent = stage / PurePosixPath(path).parent
        before = done

        def report(have: int, _total: int | None, before: int = before) -> None:
            if progress is not None:
                progress(before + have, total)

        download(hub.remote(ref, path, files), parent, progress=report)
        done += files[path][0]
    for leftover in sorted(stage.rglob(folder.PARTIAL_DIR), reverse=True):
        shutil.rmtree(leftover)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(stage, target)
    return target


def _folder_files(ref: HubRef, files: dict[str, tuple[int, str | None]], kind: str) -> list[str]:
    """The files a diffusers folder needs: configs and tokenizer files, and per part its plain .safetensors (not
    the fp16/EMA variants beside it, nor the single-file checkpoints at a pipeline's root)."""
    wanted = []
    for path in sorted(files):
        pure = PurePosixPath(path)
        if pure.suffix not in FOLDER_FILES or (kind == "checkpoint" and "/" not in path and pure.suffix != ".json"):
            continue
        if (
            pure.suffix == ".safetensors"
            and "." in pure.stem
            and pure.with_name(pure.stem.split(".")[0] + ".safetensors").as_posix() in files
        ):
            continue
        wanted.append(path)
    if not any(p.endswith(".safetensors") for p in wanted):
        raise PullError(f"{ref.repo} holds no .safetensors weights for a diffusers folder", 404)
    return wanted
