"""`pull`: a reference (Hub repository and quantisation, Hub file, URL) to a checked GGUF file in the models folder."""

from __future__ import annotations

import re
from pathlib import Path

from graycat.store import folder
from graycat.store.download import Progress, download
from graycat.store.refs import parse
from graycat.store.remote import PullError
from graycat.store.sources import locate

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def pull(text: str, models: Path, *, sha256: str | None = None, progress: Progress | None = None) -> Path:
    """The checked file `text` names, downloaded into `models` unless it is there already."""
    if sha256 is not None and not _SHA256.match(sha256):
        raise PullError(f"--sha256 {sha256!r}: expected 64 hexadecimal digits")
    if parse(text) is None:
        raise PullError(
            f"{text!r} is not a reference: use hf:OWNER/REPO[:QUANT], hf:OWNER/REPO/path/file.gguf or an https:// URL"
        )
    located = locate(text, models)
    if isinstance(located, Path):  # pulled before; its source is out of reach now
        if sha256 and (folder.read_origin(located) or {}).get("sha256") != sha256.lower():
            raise PullError(f"{located} does not have the SHA-256 {sha256}, and its source cannot be reached", 502)
        return located
    return download(located, models, sha256=sha256, progress=progress)
