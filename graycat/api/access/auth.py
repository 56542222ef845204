"""Token authentication: the static tokens of API_TOKENS / ADMIN_TOKENS, or managed tokens from Redis, as
Bearer or X-Api-Key, or as the password of HTTP Basic on the A1111 routes; every admitted request also passes
its token's limits. Routes check the token from the headers before their body is read (`TokenFirstRoute`)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from graycat.api.access.limits import STATE_KEY, Caller, admit
from graycat.api.errors import ApiError


class _Bearer(HTTPBearer):
    """The Bearer security scheme of the OpenAPI document; the token itself is read by `_bearer_caller`, so
    a request that TokenFirstRoute admitted already is not parsed again."""

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:  # type: ignore[override]
        if STATE_KEY in request.scope.get("state", {}):
            return None
        return await super().__call__(request)


_bearer = _Bearer(
    auto_error=False,
    scheme_name="HTTPBearer",
    description="A token from API_TOKENS, ADMIN_TOKENS or `graycat token create`",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="graycat"'}


def _matches(presented: bytes, tokens: list[bytes]) -> bool:
    """Compare against every token in constant time, so timing reveals neither which nor how much matched."""
    found = False
    for token in tokens:
        found |= hmac.compare_digest(presented, token)
    return found


async def authenticate(request: Request, presented: str | None, challenge: dict[str, str], how: str) -> Caller:
    """The caller behind `presented`; 401 with `challenge` when it is missing or not a valid token."""
    if not presented:
        raise ApiError(401, f"missing API token: {how}", code="missing_api_key", headers=challenge)
    state = request.app.state
    secret = presented.encode()
    admin = _matches(secret, state.admin_tokens)
    static = admin or _matches(secret, state.tokens)
    try:
        caller = await admit(request, presented, static=static, admin=admin, challenge=challenge)
    except ApiError as exc:
        if exc.code == "invalid_api_key" and not state.tokens and not state.admin_tokens:
            raise ApiError(
                401,
                "invalid API token; this server has no API_TOKENS set: set it (comma-separated) "
                "or create tokens with `graycat token create`",
                code="invalid_api_key",
                headers=challenge,
            ) from None
        raise
    request.state.owner = caller.owner
    return caller


def _admitted(request: Request) -> Caller | None:
    """The caller this request was already admitted as (by TokenFirstRoute), if any."""
    caller: Caller | None = request.scope.get("state", {}).get(STATE_KEY)
    return caller


async def require_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Caller:
    """The caller of `Authorization: Bearer <token>` or `X-Api-Key: <token>` (Anthropic's SDK, some llama.cpp
    clients); 401 with `WWW-Authenticate: Bearer` when the token is missing or wrong, 429 over its limits."""
    if (caller := _admitted(request)) is not None:
        return caller
    return await _bearer_caller(request)


async def _bearer_caller(request: Request) -> Caller:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    token = presented.strip() if scheme.lower() == "bearer" else request.headers.get("x-api-key")
    return await authenticate(
        request, token, _CHALLENGE, "send the header 'Authorization: Bearer <token>' or 'X-Api-Key: <token>'"
    )


def _basic_password(header: str) -> str | None:
    """The password of an HTTP Basic `Authorization` header (any user name), None when malformed."""
    try:
        decoded = base64.b64decode(header.removeprefix("Basic ").strip(), validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    _user, sep, password = decoded.partition(":")
    return password if sep else None


async def require_token_or_basic(request: Request) -> Caller:
    """A1111 routes: the token as Bearer, or as the password of HTTP Basic auth (A1111 clients are configured
    with a user name and password); 401 with `WWW-Authenticate: Basic` when it is missing or wrong."""
    if (caller := _admitted(request)) is not None:
        return caller
    header = request.headers.get("authorization", "")
    scheme = header.split(" ", 1)[0].lower()
    presented = header[7:].strip() if scheme == "bearer" else _basic_password(header) if scheme == "basic" else None
    return await authenticate(
        request,
        presented,
        _BASIC_CHALLENGE,
        "use HTTP Basic auth with the API token as password, or 'Authorization: Bearer <token>'",
    )


async def require_admin(caller: Caller = Depends(require_token)) -> Caller:
    """An admin token's caller; 403 for any other token."""
    if not caller.admin:
        raise ApiError(
            403,
            "this route needs an admin token (ADMIN_TOKENS, or `graycat token create --admin`)",
            code="admin_required",
        )
    return caller


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class TokenFirstRoute(APIRoute):
    """A route that admits the caller from the request's headers before it reads the body (FastAPI reads and
    parses the body before it runs dependencies): a wrong token, or one over its limits, is refused without
    the body being read, and the connection is closed so that the rest of it is not read either. The route's
    dependency then returns the caller admitted here."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        deps = {d.dependency for d in self.dependencies}
        check = require_token_or_basic if require_token_or_basic in deps else _bearer_caller

        async def checked(request: Request) -> Response:
            try:
                await check(request)
            except ApiError as exc:
                if _has_body(request):
                    exc.headers = {**exc.headers, "Connection": "close"}
                raise
            return await handler(request)

        return checked


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
