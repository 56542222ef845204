"""Bearer-token authentication."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from graycat.api.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="A token from API_TOKENS")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def fingerprint(token: str) -> str:
    """A short, non-reversible name for a token: what records and logs keep instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _matches(presented: bytes, tokens: list[bytes]) -> bool:
    """Compare against every token in constant time, so timing reveals neither which nor how much matched."""
    found = False
    for token in tokens:
        found |= hmac.compare_digest(presented, token)
    return found


async def require_token(request: Request,
                        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """The caller's token; 401 with `WWW-Authenticate: Bearer` when it is missing or wrong."""
    tokens: list[bytes] = request.app.state.tokens
    if not tokens:
        raise ApiError(401, "this server has no API tokens configured: set API_TOKENS (comma-separated)",
                       code="no_tokens_configured", headers=_CHALLENGE)
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "missing API token: send the header 'Authorization: Bearer <token>'",
                       code="missing_api_key", headers=_CHALLENGE)
    if not _matches(credentials.credentials.encode(), tokens):
        raise ApiError(401, "invalid API token", code="invalid_api_key", headers=_CHALLENGE)
    request.state.owner = fingerprint(credentials.credentials)
    return credentials.credentials
