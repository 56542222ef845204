"""The `general.*` metadata at the head of a GGUF file (architecture, size label), read without loading the model."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

# GGUF value types: fixed sizes by type id; 8 is a string, 9 an array
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
MAX_KEYS = 4096  # past this a header is not read further (a damaged file)


def general(path: Path) -> dict[str, str]:
    """The string values of the file's `general.` keys (e.g. general.architecture: llama), without the prefix;
    empty for a file that is no GGUF or is damaged."""
    found: dict[str, str] = {}
    try:
        with path.open("rb") as file:
            if file.read(4) != b"GGUF":
                return {}
            version, _tensors, count = struct.unpack("<IQQ", file.read(20))
            if version < 2:
                return {}
            for _ in range(min(count, MAX_KEYS)):
                key = _string(file)
                kind = _u32(file)
                if kind == _STRING and key.startswith("general."):
                    found[key.removeprefix("general.")] = _string(file)
                elif found and not key.startswith("general."):
                    break  # the general keys come first
                else:
                    _skip(file, kind)
    except (OSError, struct.error, UnicodeDecodeError, ValueError):
        return found
    return found


def _u32(file: BinaryIO) -> int:
    return int(struct.unpack("<I", file.read(4))[0])


def _string(file: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", file.read(8))
    if length > 1 << 20:
        raise ValueError("not a GGUF string")
    return file.read(length).decode()


def _skip(file: BinaryIO, kind: int) -> None:
    if kind == _STRING:
        (length,) = struct.unpack("<Q", file.read(8))
        file.seek(length, 1)
    elif kind == _ARRAY:
        inner = _u32(file)
        (count,) = struct.unpack("<Q", file.read(8))
        if inner in _SIZES:
            file.seek(_SIZES[inner] * count, 1)
        else:
            for _ in range(count):
                _skip(file, inner)
    elif kind in _SIZES:
        file.seek(_SIZES[kind], 1)
    else:
        raise ValueError(f"GGUF value type {kind}")
