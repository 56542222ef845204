"""Choosing the GGUF file a Hub reference names, from the repository's file listing (sizes and LFS SHA-256s)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

import httpx2
from huggingface_hub import HfApi, RepoFile, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import build_hf_headers

from graycat.store.refs import HubRef, quant_of
from graycat.store.remote import PullError, Remote

IMAGE_WEIGHTS = (".safetensors", ".ckpt")  # a repository of these and no GGUF holds an image model
DEFAULT_QUANT = "Q4_K_M"  # what Ollama pulls when a Hub reference names no tag
_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)  # one part of a model split by gguf-split

# huggingface_hub writes its warnings (retries) through a stderr handler of its own as well as through the root
# logger's: keep the root's only, so that each shows once, in graycat's log format.
for _handler in list(logging.getLogger("huggingface_hub").handlers):
    if type(_handler) is logging.StreamHandler:
        logging.getLogger("huggingface_hub").removeHandler(_handler)


def endpoint() -> str:
    """The Hub to ask: HF_ENDPOINT (a mirror, or a local one in tests), read when asked rather than at import."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"


def resolve(ref: HubRef) -> Remote:
    """The file `ref` names in its repository, with the Hub's size and SHA-256. PullError for an unknown
    repository or file, a repository without GGUF files, or a tag matching none or several."""
    files = listing(ref)
    ggufs = {path: entry for path, entry in files.items() if path.lower().endswith(".gguf")}
    if ref.file is not None:
        if ref.file not in files:
            raise PullError(f"{ref.repo} has no file {ref.file}" + _choices(ggufs), 404)
        path = ref.file
    else:
        path = _by_quant(ref, ggufs, files)
    return remote(ref, path, files)


def remote(ref: HubRef, path: str, files: dict[str, tuple[int, str | None]]) -> Remote:
    """The file `path` of the repository listed as `files`."""
    size, sha256 = files[path]
    return Remote(
        str(ref),
        hf_hub_url(ref.repo, path, endpoint=endpoint()),
        path.rsplit("/", 1)[-1],
        size,
        sha256,
        build_hf_headers(),
    )


def listing(ref: HubRef) -> dict[str, tuple[int, str | None]]:
    """Every file of the repository: path -> (size, LFS SHA-256 or None)."""
    hub = endpoint()
    try:
        entries = list(HfApi(endpoint=hub).list_repo_tree(ref.repo, recursive=True))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise PullError(f"no repository {ref.repo} on {hub} (a private or gated one needs HF_TOKEN)", 404) from None
    except HfHubHTTPError as exc:
        raise PullError(f"{hub} refused to list {ref.repo}: {_first_line(exc)}", 502) from None
    except httpx2.HTTPError as exc:
        raise PullError(f"cannot reach {hub}: {exc or type(exc).__name__}", 502) from None
    return {e.path: (e.size, e.lfs.sha256 if e.lfs else None) for e in entries if isinstance(e, RepoFile)}


def _by_quant(ref: HubRef, ggufs: dict[str, tuple[int, str | None]], files: Iterable[str]) -> str:
    models = sorted(p for p in ggufs if not p.rsplit("/", 1)[-1].lower().startswith("mmproj"))
    if not models and any(p.endswith(IMAGE_WEIGHTS) for p in files):
        raise PullError(
            f"{ref.repo} holds no GGUF file but image model weights: put it in the SD workers' folder with "
            f"`graycat pull --sd hf:{ref.repo}`",
            404,
        )
    if not models:
        raise PullError(f"{ref.repo} holds no GGUF file; name one with hf:{ref.repo}/path/file.gguf", 404)
    if ref.quant is None:
        if len(models) == 1:
            return models[0]
        found = [p for p in models if quant_of(p) == DEFAULT_QUANT]
        if len(found) == 1:
            return found[0]
        raise PullError(
            f"{ref.repo} holds {len(models)} GGUF files; choose one with a tag "
            f"(hf:{ref.repo}:{quant_of(models[0]) or 'TAG'})" + _choices(models)
        )
    tag = ref.quant.upper()
    found = [p for p in models if quant_of(p) == tag] or [
        p for p in models if (quant_of(p) or "").startswith(tag + "_")
    ]  # Q4_K: Q4_K_M or Q4_K_S
    if len(found) == 1:
        return found[0]
    if not found:
        raise PullError(f"no GGUF file of {ref.repo} has the quantisation {ref.quant}" + _choices(ggufs), 404)
    if all(_SPLIT.search(p) for p in found):
        raise PullError(
            f"{ref.quant} of {ref.repo} is split into {len(found)} files ({found[0]}, ...); graycat "
            "pulls single-file GGUF models only"
        )
    raise PullError(
        f"{ref.quant} matches {len(found)} files of {ref.repo}: {', '.join(found)}; use a longer tag "
        f"or name the file (hf:{ref.repo}/{found[0]})"
    )


def _choices(files: Iterable[str]) -> str:
    if not files:
        return "; it holds no GGUF file"
    return "; its GGUF files: " + ", ".join(f"{p} ({quant_of(p) or '?'})" for p in sorted(files))


def _first_line(exc: Exception) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
