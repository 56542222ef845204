"""What a finished job used, read from the engine's answer: tokens in and out, images made."""

from __future__ import annotations

from typing import Any

import orjson

from graycat.jobs import Usage


def usage_of(answer: bytes) -> Usage:
    """From a whole answer, or a stream's last chunk: OpenAI's `usage`, llama.cpp's `timings` or token counts,
    or a list of `images`; nothing when the answer says none of these."""
    try:
        data: Any = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return Usage()
    if not isinstance(data, dict):
        return Usage()
    if isinstance(usage := data.get("usage"), dict) and "completion_tokens" in usage:
        return Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
    if isinstance(timings := data.get("timings"), dict):
        return Usage(int(timings.get("prompt_n", 0)) + int(timings.get("cache_n", 0)),
                     int(timings.get("predicted_n", 0)))
    if "tokens_predicted" in data:
        return Usage(int(data.get("tokens_evaluated") or 0), int(data.get("tokens_predicted") or 0))
    if isinstance(images := data.get("images") or data.get("data"), list):
        return Usage(images=len(images))
    return Usage()
