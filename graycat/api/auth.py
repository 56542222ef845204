"""Token authentication: Bearer, and HTTP Basic (token as password) on the A1111 routes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from graycat.api.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="A token from API_TOKENS")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="graycat"'}


def fingerprint(token: str) -> str:
    """A short, non-reversible name for a token: what records and logs keep instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _matches(presented: bytes, tokens: list[bytes]) -> bool:
    """Compare against every token in constant time, so timing reveals neither which nor how much matched."""
    found = False
    for token in tokens:
        found |= hmac.compare_digest(presented, token)
    return found


def _check(request: Request, presented: str | None, challenge: dict[str, str], how: str) -> str:
    tokens: list[bytes] = request.app.state.tokens
    if not tokens:
        raise ApiError(401, "this server has no API tokens configured: set API_TOKENS (comma-separated)",
                       code="no_tokens_configured", headers=challenge)
    if not presented:
        raise ApiError(401, f"missing API token: {how}", code="missing_api_key", headers=challenge)
    if not _matches(presented.encode(), tokens):
        raise ApiError(401, "invalid API token", code="invalid_api_key", headers=challenge)
    request.state.owner = fingerprint(presented)
    return presented


async def require_token(request: Request,
                        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """The caller's token; 401 with `WWW-Authenticate: Bearer` when it is missing or wrong."""
    return _check(request, credentials.credentials if credentials else None, _CHALLENGE,
                  "send the header 'Authorization: Bearer <token>'")


def _basic_password(header: str) -> str | None:
    """The password of an HTTP Basic `Authorization` header (any user name), None when malformed."""
    try:
        decoded = base64.b64decode(header.removeprefix("Basic ").strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None


async def require_token_or_basic(request: Request) -> str:
    """A1111 routes: the token as Bearer, or as the password of HTTP Basic auth (A1111 clients are configured
    with a user name and password); 401 with `WWW-Authenticate: Basic` when it is missing or wrong."""
    header = request.headers.get("authorization", "")
    scheme = header.split(" ", 1)[0].lower()
    presented = header[7:].strip() if scheme == "bearer" else _basic_password(header) if scheme == "basic" else None
    return _check(request, presented, _BASIC_CHALLENGE,
                  "use HTTP Basic auth with the API token as password, or 'Authorization: Bearer <token>'")
