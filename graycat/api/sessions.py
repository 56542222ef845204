"""Conversation sessions: a chat's messages kept in Redis (per token, with a TTL), so a client sends only its
new message. Each turn goes to the worker that answered the last one while it lives (its direct lane, which
it reads before its pools), where the engine's prompt cache reuses the conversation already processed in a
slot; to any worker of the model once that one is gone."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import Request

from graycat.api.errors import ApiError
from graycat.config import Settings
from graycat.queue import session_store
from graycat.queue.client import JobQueue

log = logging.getLogger(__name__)
HEADER = "X-Session-ID"
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_pending: set[asyncio.Task[None]] = set()


def session_id(request: Request, field: object) -> str | None:
    """The session a request belongs to: the `X-Session-ID` header, else the body's `session_id`."""
    value = request.headers.get(HEADER) or field
    if value is None or value == "":
        return None
    return checked_id(value)


def checked_id(value: object) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ApiError(
            400, "session_id: 1-128 letters, digits, '.', '_', ':' or '-'", code="invalid_request", param="session_id"
        )
    return value


class Session:
    """One turn of a conversation: its history is put before the new messages, and the reply is kept."""

    def __init__(self, queue: JobQueue, owner: str, sid: str, settings: Settings) -> None:
        self._owner, self._sid, self._settings = owner, sid, settings
        self._queue = queue
        self._new: list[Any] = []
        self.preferred: str | None = None  # the worker to run this turn on, when it can
        self._runner: str | None = None

    @classmethod
    def of(cls, request: Request, field: object) -> Session | None:
        """The session of a request, named by its header or its body's `session_id` field; None without."""
        sid = session_id(request, field)
        return None if sid is None else cls.named(request, sid)

    @classmethod
    def named(cls, request: Request, sid: str) -> Session:
        return cls(request.app.state.queue, request.state.owner, sid, request.app.state.settings)

    async def history(self) -> list[Any]:
        return [orjson.loads(m) for m in await session_store.history(self._queue.redis, self._owner, self._sid)]

    async def extend(self, engine_body: bytes) -> bytes:
        """The engine request with the conversation so far before its messages; finds the preferred worker."""
        body = orjson.loads(engine_body)
        self._new = [_storable(m) for m in body.get("messages", [])]
        limit = self._settings.session_max_message_kb * 1024
        if any(len(orjson.dumps(m)) > limit for m in self._new):
            raise ApiError(
                413,
                f"a message of a session may hold at most {limit // 1024} KiB (SESSION_MAX_MESSAGE_KB)",
                code="message_too_large",
                param="messages",
            )
        history, last_worker = await session_store.history_and_worker(self._queue.redis, self._owner, self._sid)
        body["messages"] = [*map(orjson.loads, history), *body.get("messages", [])]
        if last_worker and await self._queue.worker_available(last_worker):
            self.preferred = last_worker
        return orjson.dumps(body)

    async def forget(self) -> None:
        await session_store.forget(self._queue.redis, self._owner, self._sid)

    def started(self, worker_id: str) -> None:
        """The worker that runs this turn (it will hold the conversation's KV cache)."""
        self._runner = worker_id

    def keep(self, messages: list[Any]) -> None:
        """Append `messages` to the conversation, in the background (the answer does not wait for it)."""
        task = asyncio.get_running_loop().create_task(self._append(messages))
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    def _keep(self, reply: dict[str, Any]) -> None:
        self.keep([*self._new, reply])

    async def _append(self, messages: list[dict[str, Any]]) -> None:
        settings = self._settings
        try:
            limits = session_store.SessionLimits(
                settings.session_ttl,
                settings.session_max_messages,
                settings.session_max_kb * 1024,
                settings.sessions_max_mb_per_token * 1024 * 1024,
            )
            forgotten = await session_store.append(
                self._queue.redis,
                self._owner,
                self._sid,
                [orjson.dumps(m) for m in messages],
                self._runner or "",
                limits,
                time.time(),
            )
            if forgotten:
                log.info(
                    "token %s is over SESSIONS_MAX_MB_PER_TOKEN: %d old session(s) forgotten", self._owner, forgotten
                )
        except Exception as exc:  # the answer was given; only the history of this turn is lost
            log.warning("could not save a turn of session %s of token %s: %s", self._sid, self._owner, exc)

    def watch_answer(self, reshape: Callable[[bytes], bytes] | None) -> Callable[[bytes], bytes]:
        """Keep the reply of a whole (OpenAI chat) answer, then reshape it as the client reads it."""

        def watched(body: bytes) -> bytes:
            message = orjson.loads(body)["choices"][0].get("message") or {}
            self._keep(_storable(message))
            return reshape(body) if reshape else body

        return watched

    def watch_stream(self, render: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        """Collect the reply from (OpenAI chat) stream chunks; keep it when the generation finishes."""
        parts: list[str] = []

        def watched(payload: bytes) -> bytes:
            if payload != b"[DONE]" and (choices := orjson.loads(payload).get("choices")):
                parts.append(choices[0].get("delta", {}).get("content") or "")
                if choices[0].get("finish_reason"):
                    self._keep({"role": "assistant", "content": "".join(parts)})
            return render(payload)

        return watched


def _storable(message: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in message.items()
        if v is not None and k in ("role", "content", "tool_calls", "name", "tool_call_id")
    }
