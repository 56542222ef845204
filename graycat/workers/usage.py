"""What a job used, read from the engine's answer and from its stream chunks as they pass: tokens in and out,
images made. A job stopped midway counts what it made until then; a job of several prompts counts them all."""

from __future__ import annotations

from typing import Any

import orjson

from graycat.jobs import TEXT_GENERATION, Job, JobState, Usage, engine_cap

UNKNOWN = -1  # what a count is when the engine does not say it: the job's reservation counts instead


class Meter:
    """Counts a job's output from its stream chunks (fed one by one) and its final answer."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self._made: dict[int, int] = {}  # completion index -> tokens generated
        self._read: dict[int, int] = {}  # completion index -> prompt tokens
        self._iterations = 0  # image batches finished

    def feed(self, chunk: bytes) -> None:
        try:
            data: Any = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        if isinstance(data.get("type"), str):  # OpenAI Responses' events
            self._typed_event(data)
            return
        choices = data.get("choices")
        final = "timings" in data or "usage" in data  # a completion's last chunk, with its figures
        if choices is None and not final and type(made := data.get("tokens_predicted")) is int:
            index = _int(data.get("index"))  # llama.cpp's running count
            self._made[index], self._read[index] = made, _int(data.get("tokens_evaluated"))
            return
        if "job_no" in data:  # an image job's progress: batches before the current one are finished
            done = _int(data.get("job_no")) + (1 if _int(data.get("step")) >= _int(data.get("steps"), 1) else 0)
            self._iterations = max(self._iterations, done)
            return
        index = _int(data.get("index"))
        if isinstance(choices, list):  # an OpenAI chunk: one token per chunk with content, until the figures
            for choice in choices:
                if isinstance(choice, dict) and _has_content(choice):
                    i = _int(choice.get("index"))
                    self._made[i] = self._made.get(i, 0) + 1
            index = _int(choices[0].get("index")) if len(choices) == 1 and isinstance(choices[0], dict) else 0
        if final and (found := _usage(data)) is not None:
            self._made[index], self._read[index] = found.completion_tokens, found.prompt_tokens

    def _typed_event(self, data: dict[str, Any]) -> None:
        """OpenAI Responses' events: a token per delta, until the figures of response.completed."""
        response = data.get("response")
        usage = response.get("usage") if isinstance(response, dict) else None
        if data["type"] == "response.completed" and isinstance(usage, dict):
            self._read[0], self._made[0] = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        elif data["type"] in _DELTA_EVENTS:
            self._made[0] = self._made.get(0, 0) + 1

    def usage(self, status: int, body: bytes, state: JobState, ran: bool) -> Usage:
        """What the job used, once it ended in `state` with (`status`, `body`); `ran`: it reached the engine."""
        if body and status < 400:
            return self._answer(body)
        if self._made or self._read:
            return Usage(sum(self._read.values()), sum(self._made.values()))
        if self._iterations:
            return Usage(images=self._iterations * self._batch_size())
        stopped = state == JobState.CANCELLED or status == 504
        if ran and stopped and self._job.kind == "llm" and self._job.endpoint in TEXT_GENERATION:
            return Usage(completion_tokens=UNKNOWN)  # a whole answer was being made: unknown how far it got
        return Usage()

    def _answer(self, body: bytes) -> Usage:
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Usage()
        if isinstance(data, list):  # llama.cpp's answer to several prompts: one result each
            parts = [_usage(d) or Usage() for d in data if isinstance(d, dict)]
            return Usage(sum(p.prompt_tokens for p in parts), sum(p.completion_tokens for p in parts))
        if not isinstance(data, dict):
            return Usage()
        if isinstance(images := data.get("images"), list):
            return Usage(images=_images(data, len(images)))
        found = _usage(data) or Usage()
        choices = data.get("choices")
        if isinstance(choices, list) and len(choices) > 1:
            return Usage(found.prompt_tokens, self._choices(choices, found.completion_tokens))
        return found

    def _choices(self, choices: list[Any], reported: int) -> int:
        """Tokens of an OpenAI answer with several choices, for which llama.cpp reports one choice's count: a
        choice that stopped at the cap made the cap, any other at most the count reported (and the cap)."""
        try:
            body = orjson.loads(self._job.body)
        except orjson.JSONDecodeError:
            body = {}
        cap = engine_cap(body) if isinstance(body, dict) else None
        total = 0
        for choice in choices:
            at_cap = isinstance(choice, dict) and choice.get("finish_reason") == "length"
            total += cap if at_cap and cap is not None else reported if cap is None else min(reported, cap)
        return total

    def _batch_size(self) -> int:
        try:
            params = orjson.loads(self._job.body)
        except orjson.JSONDecodeError:
            return 1
        return max(1, _int(params.get("batch_size"), 1)) if isinstance(params, dict) else 1


_DELTA_EVENTS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


def _usage(data: dict[str, Any]) -> Usage | None:
    """Token counts of one answer or chunk, None when it has none."""
    if isinstance(usage := data.get("usage"), dict) and "output_tokens" in usage:  # a Response's
        return Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")))
    if isinstance(usage := data.get("usage"), dict) and "completion_tokens" in usage:
        return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))
    if isinstance(timings := data.get("timings"), dict):
        return Usage(_int(timings.get("prompt_n")) + _int(timings.get("cache_n")), _int(timings.get("predicted_n")))
    if "tokens_predicted" in data:
        return Usage(_int(data.get("tokens_evaluated")), _int(data.get("tokens_predicted")))
    if isinstance(usage, dict):  # embeddings: prompt tokens only
        return Usage(_int(usage.get("prompt_tokens")))
    return None


def _images(data: dict[str, Any], sent: int) -> int:
    """Images an image answer made: its infotext's seeds (images are left out with send_images false, and an
    A1111 grid is one more), else the images sent."""
    info = data.get("info")
    try:
        seeds = orjson.loads(info).get("all_seeds") if isinstance(info, str) else None
    except (orjson.JSONDecodeError, AttributeError):
        seeds = None
    return len(seeds) if isinstance(seeds, list) else sent


def _has_content(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta")
    return bool(choice.get("text")) or (
        isinstance(delta, dict) and any(delta.get(k) for k in ("content", "reasoning_content", "tool_calls"))
    )


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
