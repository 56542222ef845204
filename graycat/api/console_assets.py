"""The console's static files (graycat/api/console/, shipped as package data), read once and served with
strong ETags: the page is revalidated on every load (`no-cache`), the assets it names carry their hash in the
URL and are cached for a year."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from starlette.responses import Response

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
PAGE = "index.html"
# The page runs only its own files: no inline script or style, no other origin, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, name: str, body: bytes) -> Asset:
        suffix = name[name.rfind(".") :]
        return cls(body, _TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:20] + '"')

    def response(
        self, if_none_match: str | None, cache_control: str, headers: dict[str, str] | None = None
    ) -> Response:
        """The asset, or 304 when the client holds this version."""
        common = {"ETag": self.etag, "Cache-Control": cache_control, **(headers or {})}
        if if_none_match and self.etag in (t.strip().removeprefix("W/") for t in if_none_match.split(",")):
            return Response(status_code=304, headers=common)
        return Response(self.body, media_type=self.media_type, headers=common)


def _load() -> tuple[Asset, dict[str, Asset]]:
    folder = resources.files("graycat.api") / "console"
    assets = {
        f.name: Asset.of(f.name, f.read_bytes())
        for f in folder.iterdir()
        if f.is_file() and f.name != PAGE and f.name[f.name.rfind(".") :] in _TYPES
    }
    page = (folder / PAGE).read_text()
    for name, asset in assets.items():  # the page names each asset with its version
        page = page.replace(f'assets/{name}"', f'assets/{name}?v={asset.etag.strip(chr(34))}"')
    return Asset.of(PAGE, page.encode()), assets


page, assets = _load()
