"""Every dialect against the engine called directly, in one run: time to first token and tokens/s.

Each gateway route is compared with the engine's nearest endpoint (the engine has no Ollama API: /api/chat
is compared with the engine's own /v1/chat/completions; Anthropic's /v1/messages and OpenAI's /v1/responses
with the engine's own), same prompt, temperature 0 so both sides generate
the same tokens, requests interleaved. Time to first token is measured to the first event that carries
generated text; tokens/s is generated tokens over the whole request's time, one stream at a time.

    .venv/bin/python -m benchmarks.dialects [--quick]

Prints a markdown table and writes benchmarks/results/dialects.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from benchmarks.gateway_overhead import (
    GATEWAY_HEADERS,
    JSON_HEADERS,
    CpuMeter,
    Row,
    Target,
    deployment,
    host_info,
    interleaved,
    pct,
    save,
    table,
)

RESULTS = Path(__file__).resolve().parent / "results" / "dialects.json"
STORY = "Write a long story about a cat who learns to fly."
CHAT = [{"role": "user", "content": STORY}]


@dataclass(frozen=True)
class Dialect:
    """A gateway route, the engine endpoint it is compared with, and how to read each side's stream."""

    name: str
    gateway_path: str
    engine_path: str
    gateway_body: Callable[[int], dict[str, Any]]  # n tokens -> request body
    engine_body: Callable[[int], dict[str, Any]]
    gateway_ndjson: bool = False  # the gateway answers NDJSON lines (Ollama), the engine SSE events


def _native(n: int) -> dict[str, Any]:
    return {"prompt": STORY, "n_predict": n, "temperature": 0, "stream": True}


def _chat(n: int) -> dict[str, Any]:
    return {"messages": CHAT, "max_tokens": n, "temperature": 0, "stream": True}


def _anthropic(n: int) -> dict[str, Any]:
    return {"model": "default", "messages": CHAT, "max_tokens": n, "temperature": 0, "stream": True}


def _responses(n: int) -> dict[str, Any]:
    return {"model": "default", "input": STORY, "max_output_tokens": n, "temperature": 0, "stream": True}


def _ollama(n: int) -> dict[str, Any]:
    return {"model": "default", "messages": CHAT, "options": {"num_predict": n, "temperature": 0}}


DIALECTS = (
    Dialect("llama.cpp /completion", "/completion", "/completion", _native, _native),
    Dialect("OpenAI /v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions", _chat, _chat),
    Dialect("Ollama /api/chat", "/api/chat", "/v1/chat/completions", _ollama, _chat, gateway_ndjson=True),
    Dialect("Anthropic /v1/messages", "/v1/messages", "/v1/messages", _anthropic, _anthropic),
    Dialect("OpenAI /v1/responses", "/v1/responses", "/v1/responses", _responses, _responses),
)


def _events(data: bytes, ndjson: bool) -> list[dict[str, Any]]:
    if ndjson:
        return [orjson.loads(line) for line in data.split(b"\n") if line.strip()]
    return [orjson.loads(e[e.index(b"data: {") + 6 :]) for e in data.split(b"\n\n") if b"data: {" in e]


def _text(event: dict[str, Any]) -> str:
    """The generated text an event carries, in any of the shapes (typed events: Anthropic's, Responses')."""
    kind = event.get("type")
    if kind == "content_block_delta":
        return str(event["delta"].get("text") or "")
    if kind == "response.output_text.delta":
        return str(event.get("delta") or "")
    if kind:
        return ""
    if "choices" in event:
        return "".join((c.get("delta") or {}).get("content") or "" for c in event["choices"])
    if "message" in event:
        return str(event["message"].get("content") or "")
    return str(event.get("content") or "")


def _tokens(event: dict[str, Any]) -> int:
    """Tokens generated, from a final event (engine timings, Ollama's eval_count, Anthropic's / Responses'
    output_tokens)."""
    usage = event.get("usage") or (event.get("response") or {}).get("usage") or {}
    return int(
        event.get("eval_count") or (event.get("timings") or {}).get("predicted_n") or usage.get("output_tokens") or 0
    )


async def streamed(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, ndjson: bool
) -> tuple[float, int, float]:
    """(time to the first generated text, tokens generated, total seconds) of one streamed request."""
    t0 = time.perf_counter()
    ttft = 0.0
    data = b""
    async with session.post(url, data=body, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url} answered {resp.status}: {await resp.read()!r}")
        async for chunk in resp.content.iter_any():
            data += chunk
            if not ttft and any(_text(e) for e in _events(data.rsplit(b"\n", 1)[0] + b"\n", ndjson)):
                ttft = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return ttft, max(_tokens(e) for e in _events(data, ndjson)), total


async def measure(engine: str, gateway: str, n: int, tokens: int, meter: CpuMeter) -> list[Row]:
    rows: list[Row] = []
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)) as s:
        for d in DIALECTS:
            sides = (
                Target("direct", engine + d.engine_path, JSON_HEADERS),
                Target("gateway", gateway + d.gateway_path, GATEWAY_HEADERS),
            )
            bodies = {"direct": orjson.dumps(d.engine_body(tokens)), "gateway": orjson.dumps(d.gateway_body(tokens))}
            ndjson = {"direct": False, "gateway": d.gateway_ndjson}
            results: dict[str, list[tuple[float, int, float]]] = {"direct": [], "gateway": []}

            async def once(
                t: Target,
                results: dict[str, list[tuple[float, int, float]]] = results,
                bodies: dict[str, bytes] = bodies,
                ndjson: dict[str, bool] = ndjson,
            ) -> float:
                results[t.name].append(await streamed(s, t.url, t.headers, bodies[t.name], ndjson[t.name]))
                return results[t.name][-1][0]

            print(f"{d.name}: {n} streams of {tokens} tokens each way", file=sys.stderr)
            await interleaved(sides, 2, once)  # warm-up
            for samples in results.values():
                samples.clear()
            extra: dict[str, Any] = {"n": n, "tokens": tokens}
            await meter.wait_quiet()
            with meter.phase(extra):
                await interleaved(sides, n, once)
            ttft = {k: sorted(r[0] * 1e3 for r in v) for k, v in results.items()}
            tps = {k: statistics.median(r[1] / r[2] for r in v) for k, v in results.items()}
            added = pct(ttft["gateway"], 50) - pct(ttft["direct"], 50)
            rows.append(
                Row(
                    f"{d.name}: TTFT p50",
                    pct(ttft["direct"], 50),
                    pct(ttft["gateway"], 50),
                    "ms",
                    added,
                    False,
                    3.0,
                    added <= 3.0,
                    extra,
                )
            )
            ratio = tps["gateway"] / tps["direct"]
            rows.append(
                Row(f"{d.name}: tok/s", tps["direct"], tps["gateway"], "tok/s", ratio, True, 0.97, ratio >= 0.97, extra)
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dialects", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10 streams per side and dialect")
    parser.add_argument("-n", "--requests", type=int, help="streams per side and dialect (default 30)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per stream (default 64)")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=30.0,
        metavar="S",
        help="before each dialect, wait up to S seconds for other processes to go quiet",
    )
    args = parser.parse_args()
    n = args.requests or (10 if args.quick else 30)
    load_before = os.getloadavg()
    with deployment(slots=1) as d:
        meter = CpuMeter(d.pids, args.max_wait)
        rows = asyncio.run(measure(d.engine_url, d.gateway_url, n, args.tokens, meter))
    results = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "requests": n,
        "tokens": args.tokens,
        "host": host_info(load_before),
        "rows": [r.__dict__ for r in rows],
    }
    print(table(rows))
    save(results, RESULTS)


if __name__ == "__main__":
    main()
