"""`/sessions/{id}`: read or forget a conversation kept for the caller's token."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from graycat.api.access.auth import TokenFirstRoute, require_token
from graycat.api.errors import ApiError
from graycat.api.routes import json_response
from graycat.api.sessions import Session, checked_id

router = APIRouter(
    prefix="/sessions", tags=["sessions"], dependencies=[Depends(require_token)], route_class=TokenFirstRoute
)


def _session(request: Request, session_id: str) -> Session:
    return Session.named(request, checked_id(session_id))


@router.get("/{session_id}", summary="A session's messages, oldest first")
async def read(request: Request, session_id: str) -> Response:
    session = _session(request, session_id)
    messages = await session.history()
    if not messages:
        raise ApiError(404, f"no session '{session_id}' (it may have expired)", code="session_not_found")
    return json_response({"id": session_id, "messages": messages})


@router.delete("/{session_id}", summary="Forget a session", status_code=204)
async def forget(request: Request, session_id: str) -> Response:
    await _session(request, session_id).forget()
    return Response(status_code=204)
