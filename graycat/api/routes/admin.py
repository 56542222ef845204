"""Admin routes (an admin token only): managed tokens and per-token usage."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from graycat import tokens
from graycat.api.access.auth import TokenFirstRoute, require_admin
from graycat.api.access.limits import today
from graycat.api.errors import ApiError
from graycat.api.routes import json_response

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)], route_class=TokenFirstRoute)


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    rpm: int = Field(0, ge=0, description="Requests per minute (0: the server's RATE_LIMIT_RPM).")
    concurrency: int = Field(0, ge=0, description="Requests in flight (0: the server's RATE_LIMIT_CONCURRENCY).")
    models: list[str] = Field(default_factory=list, description="Models it may use (empty: all).")
    daily_tokens: int = Field(0, ge=0, description="Generated tokens per day, UTC (0: no quota).")
    daily_images: int = Field(0, ge=0, description="Images per day, UTC (0: no quota).")
    expires: datetime | None = Field(None, description="When it stops working (ISO 8601; a date means midnight UTC).")
    admin: bool = False


@router.post("/tokens", status_code=201, summary="Create a token; its secret is shown once")
async def create(request: Request, new: NewToken) -> Response:
    info = tokens.TokenInfo.new(
        new.name,
        rpm=new.rpm,
        concurrency=new.concurrency,
        models=new.models,
        daily_tokens=new.daily_tokens,
        daily_images=new.daily_images,
        expires=new.expires,
        admin=new.admin,
    )
    secret = await tokens.create(request.app.state.queue.redis, info)
    return json_response({"token": secret, **info.public()}, 201)


@router.get("/tokens", summary="Every managed token (never their secrets)")
async def list_tokens(request: Request) -> Response:
    return json_response({"tokens": [t.public() for t in await tokens.list_all(request.app.state.queue.redis)]})


@router.delete("/tokens/{name_or_fingerprint}", summary="Revoke tokens by name or fingerprint")
async def revoke(request: Request, name_or_fingerprint: str) -> Response:
    revoked = await tokens.revoke(request.app.state.queue.redis, name_or_fingerprint)
    if not revoked:
        raise ApiError(404, f"no token named or fingerprinted '{name_or_fingerprint}'", code="token_not_found")
    return json_response({"revoked": revoked})


@router.get("/usage", summary="Per-token usage of one day (UTC): requests, errors, jobs, tokens, images")
async def usage(request: Request, day: str = Query(default_factory=today, pattern=r"^\d{4}-\d{2}-\d{2}$")) -> Response:
    queue = request.app.state.queue
    names = {t.fingerprint: t.name for t in await tokens.list_all(queue.redis)}
    usage = await queue.usage_of_day(day)
    found = {owner: {"name": names.get(owner, ""), **counts} for owner, counts in usage.items()}
    return json_response({"day": day, "tokens": found})
