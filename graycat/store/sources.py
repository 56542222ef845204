"""What a model setting stands for: a file on disk, or a reference to pull (its file chosen before the download, so
a worker can announce the model's name while it downloads)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import httpx2
from huggingface_hub.utils import get_session

from graycat.store import folder, hub
from graycat.store.refs import HubRef, UrlRef, parse
from graycat.store.remote import PullError, Remote


def locate(text: str, models: Path) -> Path | Remote:
    """A path as it is (a bare name that is no file: the model of that name in `models`); for a reference, the
    Remote file to download, or the file pulled from it before when its source cannot be reached (a worker
    restarting offline)."""
    ref = parse(text)
    if ref is None:
        path = Path(text).expanduser()
        pulled = None if path.is_file() or "/" in text else folder.find(models, text)
        return pulled.path if pulled is not None else path
    try:
        return hub.resolve(ref) if isinstance(ref, HubRef) else _url(ref)
    except PullError as exc:
        known = folder.find(models, str(ref))
        if known is None or exc.status != 502:
            raise
        return known.path


def name_of(text: str, models: Path) -> str:
    """The name a worker serves the model of `text` under: its file's stem."""
    ref = parse(text)
    if isinstance(ref, UrlRef) or (isinstance(ref, HubRef) and ref.file):
        return PurePosixPath(ref.file_name if isinstance(ref, UrlRef) else ref.file or "").stem
    if ref is not None and (known := folder.find(models, str(ref))) is not None:
        return known.name
    located = locate(text, models)
    return PurePosixPath(located.file_name).stem if isinstance(located, Remote) else located.stem


def _url(ref: UrlRef) -> Remote:
    """A URL's file, with its size from a HEAD request (redirects followed) when the server states it."""
    try:
        answer = get_session().head(ref.url, follow_redirects=True, timeout=30)
    except httpx2.HTTPError as exc:
        raise PullError(f"cannot reach {ref.url}: {exc or type(exc).__name__}", 502) from None
    if answer.status_code == 404:
        raise PullError(f"no file at {ref.url} (404)", 404)
    if answer.status_code >= 400 and answer.status_code != 405:  # some servers refuse HEAD alone
        raise PullError(f"{ref.url} answered {answer.status_code}", 502)
    length = answer.headers.get("Content-Length") if answer.status_code < 300 else None
    return Remote(str(ref), ref.url, ref.file_name, int(length) if length and length.isdigit() else None, None)
