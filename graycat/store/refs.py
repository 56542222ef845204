"""Model references: `hf:OWNER/REPO[:QUANT]`, `hf:OWNER/REPO/path/file.gguf` (also `hf.co/...`, as Ollama writes
them) and `http(s)://` URLs; anything else is a path on disk."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from graycat.store.remote import PullError

HUB_PREFIXES = ("hf:", "hf.co/", "huggingface.co/", "https://huggingface.co/", "https://hf.co/")
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_QUANT = re.compile(r"^[A-Za-z0-9_.-]+$")


class RefError(PullError):
    """A reference that cannot name a model."""


@dataclass(frozen=True)
class HubRef:
    """A GGUF file of a Hub repository: an exact `file`, or the one whose quantisation is `quant` (None: the
    repository's only GGUF, or its Q4_K_M)."""

    repo: str
    quant: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        if self.file:
            return f"hf:{self.repo}/{self.file}"
        return f"hf:{self.repo}:{self.quant}" if self.quant else f"hf:{self.repo}"


@dataclass(frozen=True)
class UrlRef:
    url: str

    @property
    def file_name(self) -> str:
        return PurePosixPath(unquote(urlsplit(self.url).path)).name

    def __str__(self) -> str:
        return self.url


def parse(text: str) -> HubRef | UrlRef | None:
    """The reference `text` names, or None when it is a plain path. RefError when it looks like a reference but
    is not a valid one."""
    text = text.strip()
    for prefix in HUB_PREFIXES:
        if text.startswith(prefix):
            return _hub(text[len(prefix) :], text)
    if text.startswith(("http://", "https://")):
        ref = UrlRef(text)
        if not urlsplit(text).netloc or not ref.file_name:
            raise RefError(f"{text!r}: a URL must name a file (https://host/path/model.gguf)")
        return ref
    return None


def _hub(rest: str, text: str) -> HubRef:
    parts = rest.split("/")
    if len(parts) < 2:
        raise RefError(f"{text!r}: expected hf:OWNER/REPO[:QUANT] or hf:OWNER/REPO/path/file.gguf")
    owner, repo = parts[0], parts[1]
    quant = None
    if len(parts) == 2 and ":" in repo:
        repo, quant = repo.split(":", 1)
        if not _QUANT.match(quant):
            raise RefError(f"{text!r}: {quant!r} is not a quantisation tag (e.g. Q4_K_M)")
        if quant.lower() == "latest":  # Ollama's implied tag
            quant = None
    if not _PART.match(owner) or not _PART.match(repo):
        raise RefError(f"{text!r}: {owner}/{repo} is not a repository name")
    path = "/".join(parts[2:])
    if parts[2:] and (not all(parts[2:]) or ".." in parts[2:]):
        raise RefError(f"{text!r}: {path!r} is not a file path")
    return HubRef(f"{owner}/{repo}", quant, path or None)


def quant_of(file_name: str) -> str | None:
    """The quantisation a GGUF file's name states (Q4_K_M, Q8_0, IQ4_XS, F16, ...), upper case; None if none."""
    found = re.findall(
        r"(?<![A-Za-z0-9])(I?Q[1-8](?:_[A-Za-z0-9]+)*|BF16|F16|F32)(?![A-Za-z0-9])",
        PurePosixPath(file_name).stem,
        flags=re.IGNORECASE,
    )
    return found[-1].upper() if found else None
