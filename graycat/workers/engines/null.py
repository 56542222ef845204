"""The null engine: answers at once with a fixed-size reply. For measuring the gateway itself (benchmarks,
load tests); it generates nothing and is never a default."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from graycat.jobs import Job
from graycat.workers.engines.base import Emit


class NullEngine:
    """Serves `model_name` with `tokens` tokens of "x" per request, `token_delay` seconds apart."""

    kind = "llm"

    def __init__(
        self,
        model_name: str = "null",
        *,
        slots: int = 64,
        tokens: int = 16,
        token_delay: float = 0.0,
        n_ctx: int = 4096,
    ) -> None:
        self.model_name = model_name
        self.slots = slots
        self.tokens = tokens
        self.token_delay = token_delay
        self.n_ctx = n_ctx
        self._served = 0

    async def start(self) -> None:
        return None

    def models(self) -> dict[str, dict[str, Any]]:
        return {self.model_name: {"kind": self.kind, "n_ctx": self.n_ctx, "slots": self.slots, "null": True}}

    def stats(self) -> dict[str, Any]:
        return {"served": self._served, "null": True}

    async def run(self, job: Job, emit: Emit) -> tuple[int, bytes]:
        self._served += 1
        chat = job.endpoint.endswith("/chat/completions")
        oai = job.endpoint.startswith("/v1/")
        if job.stream:
            for i in range(self.tokens):
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                emit(self._chunk(i, chat, oai))
            emit(self._final(chat, oai, stream=True))
            if oai:
                emit(b"[DONE]")
            return 200, b""
        if self.token_delay:
            await asyncio.sleep(self.token_delay * self.tokens)
        return 200, self._final(chat, oai, stream=False)

    def _chunk(self, i: int, chat: bool, oai: bool) -> bytes:
        if not oai:
            return orjson.dumps(
                {
                    "index": 0,
                    "content": "x",
                    "tokens": [i],
                    "stop": False,
                    "id_slot": -1,
                    "tokens_predicted": i + 1,
                    "tokens_evaluated": 1,
                }
            )
        choice = {"index": 0, "finish_reason": None, **({"delta": {"content": "x"}} if chat else {"text": "x"})}
        return orjson.dumps(
            {
                "id": "null",
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": int(time.time()),
                "model": self.model_name,
                "choices": [choice],
            }
        )

    def _final(self, chat: bool, oai: bool, *, stream: bool) -> bytes:
        text = "" if stream and not oai else "x" * self.tokens
        if not oai:
            return orjson.dumps(
                {
                    "index": 0,
                    "content": text,
                    "tokens": [],
                    "stop": True,
                    "model": self.model_name,
                    "tokens_predicted": self.tokens,
                    "tokens_evaluated": 1,
                    "stop_type": "limit",
                }
            )
        usage = {"prompt_tokens": 1, "completion_tokens": self.tokens, "total_tokens": self.tokens + 1}
        if stream:
            choice: dict[str, Any] = {
                "index": 0,
                "finish_reason": "length",
                **({"delta": {}} if chat else {"text": ""}),
            }
        else:
            choice = {
                "index": 0,
                "finish_reason": "length",
                **({"message": {"role": "assistant", "content": text}} if chat else {"text": text}),
            }
        kind = ("chat.completion.chunk" if stream else "chat.completion") if chat else "text_completion"
        return orjson.dumps(
            {
                "id": "null",
                "object": kind,
                "created": int(time.time()),
                "model": self.model_name,
                "choices": [choice],
                "usage": usage,
            }
        )

    async def close(self) -> None:
        return None
