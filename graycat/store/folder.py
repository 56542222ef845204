"""The models folder's contents: GGUF files, each with a small `<file>.origin.json` saying where it came from and its
SHA-256 (written once the file is checked and in place), and `.served.json`: the models pulled (or copied) into it
through the gateway, which the workers reading the folder serve again when they start."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from graycat.store import gguf_meta
from graycat.store.refs import quant_of

ORIGIN_SUFFIX = ".origin.json"
SERVED_FILE = ".served.json"  # model name -> its file's name: what workers reading the folder serve at start
PARTIAL_DIR = ".partial"  # unfinished downloads: <file>.<16 hex digits of its SHA-256 or URL>.part


@dataclass(frozen=True)
class OnDisk:
    name: str  # what a worker serves it as: the file's stem
    path: Path
    quant: str | None
    size: int
    ref: str | None  # the reference it was pulled from; None for a file put there by hand
    sha256: str | None = None  # checked when it was pulled; None for a file put there by hand
    family: str | None = None  # the GGUF's general.architecture (llama, qwen2, ...)
    parameter_size: str | None = None  # its general.size_label (135M, 7B, ...)
    modified: float = 0.0


def origin_path(model: Path) -> Path:
    return model.with_name(model.name + ORIGIN_SUFFIX)


def read_origin(model: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(origin_path(model).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_origin(model: Path, origin: dict[str, Any]) -> None:
    path = origin_path(model)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(orjson.dumps(origin, option=orjson.OPT_INDENT_2))
    os.replace(temporary, path)


def models(folder: Path) -> list[OnDisk]:
    """The GGUF files of the folder, by name."""
    if not folder.is_dir():
        return []
    return [on_disk(path) for path in sorted(folder.glob("*.gguf")) if path.is_file()]


def on_disk(path: Path) -> OnDisk:
    """What is known of one GGUF file: its origin (when pulled), its header's general metadata, its size."""
    origin, meta, stat = read_origin(path) or {}, gguf_meta.general(path), path.stat()
    return OnDisk(
        path.stem,
        path,
        quant_of(path.name),
        stat.st_size,
        origin.get("ref"),
        origin.get("sha256"),
        meta.get("architecture"),
        meta.get("size_label"),
        stat.st_mtime,
    )


def described(model: OnDisk) -> dict[str, Any]:
    """A file's facts as workers announce a model (and Ollama's tags and show report them)."""
    return {
        "size": model.size,
        "digest": model.sha256 or "",
        "quantization": model.quant or "",
        "family": model.family or "",
        "parameter_size": model.parameter_size or "",
        "created": model.modified,
    }


def partials(folder: Path) -> list[tuple[str, int]]:
    """Downloads left unfinished (the next pull of the same file resumes them): file name and bytes received."""
    return sorted((p.name.rsplit(".", 2)[0], p.stat().st_size) for p in (folder / PARTIAL_DIR).glob("*.part"))


def find(folder: Path, name: str) -> OnDisk | None:
    """The model called `name` (its stem or file name), or the one last pulled from the reference `name`."""
    listed = models(folder)
    return next((m for m in listed if name in (m.name, m.path.name)), None) or next(
        (m for m in listed if m.ref == name), None
    )


def check_name(name: str) -> str:
    """`name` as a model's file stem; ValueError for a name that is no plain file name."""
    if not name or name != Path(name).name or name.startswith("."):
        raise ValueError(f"{name!r} is not a model name (a file name without folders)")
    return name.removesuffix(".gguf")


def copy(model: OnDisk, name: str, into: Path | None = None) -> Path:
    """The model again under `name`, in the folder `into` (default: its own), as a hard link where the
    filesystem allows (no second copy of the bytes), with its origin. ValueError for a name that is no plain file
    name, FileExistsError for one taken."""
    target = (into or model.path.parent) / f"{check_name(name)}.gguf"
    taken = FileExistsError(f"a model {target.stem} is already there")
    try:
        os.link(model.path, target)  # never over a file there: another worker's copy made at the same moment
    except FileExistsError:
        raise taken from None
    except OSError:  # no hard link here: a copy, created only where no file is
        try:
            with open(model.path, "rb") as source, open(target, "xb") as copied:
                shutil.copyfileobj(source, copied)
        except FileExistsError:
            raise taken from None
    if (origin := read_origin(model.path)) is not None:
        write_origin(target, origin)
    return target


def remove(model: OnDisk) -> None:
    """Delete the model's file and its origin, and forget it among the models served at start."""
    model.path.unlink()
    with contextlib.suppress(FileNotFoundError):
        origin_path(model.path).unlink()
    forget(model.path.parent, model.name)


def served_at_start(folder: Path) -> dict[str, Path]:
    """The models pulled or copied into the folder through the gateway (name -> file), whose files are there."""
    files = {name: folder / file for name, file in _served_names(folder).items()}
    return {name: path for name, path in files.items() if path.parent == folder and path.is_file()}


def remember(folder: Path, name: str, path: Path) -> None:
    """Workers reading the folder serve the model `name` (the file `path` in it) when they start."""
    with _served_lock(folder):
        _write_served(folder, {**_served_names(folder), name: path.name})


def forget(folder: Path, name: str) -> None:
    with _served_lock(folder):
        served = _served_names(folder)
        if served.pop(name, None) is not None:
            _write_served(folder, served)


@contextlib.contextmanager
def _served_lock(folder: Path) -> Iterator[None]:
    """One change of `.served.json` at a time among the workers and commands sharing the folder (a read, then
    a write: two at once would lose one's entry)."""
    with open(folder / f"{SERVED_FILE}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _served_names(folder: Path) -> dict[str, str]:
    try:
        data = orjson.loads((folder / SERVED_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return {str(name): str(file) for name, file in data.items()} if isinstance(data, dict) else {}


def _write_served(folder: Path, served: dict[str, str]) -> None:
    path = folder / SERVED_FILE
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(orjson.dumps(served, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    os.replace(temporary, path)


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
