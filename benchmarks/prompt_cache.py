"""What PROMPT_CACHE costs: a long shared system prompt, sent by one token or by several, under each setting.

The embedded llama.cpp engine (SmolLM2-135M-Instruct, 2 slots) is driven through the worker's own engine
class (`LlamaHttpEngine`), as `graycat worker llm` runs it, once per setting. Each request is the same long
system prompt and a new short question, `n_predict` 1: its time is the time to the first token.

    .venv/bin/python -m benchmarks.prompt_cache [--requests 6] [--threads 1]

Prints a markdown table: per setting and scenario, the median time to the first token and the prompt tokens
taken from the cache.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import get_args

import orjson

from graycat.jobs import Job
from graycat.workers.engines.llama_http import LlamaHttpEngine
from graycat.workers.engines.llama_server import EmbeddedLlamaServer, default_model_path
from graycat.workers.engines.tenant_slots import PromptCache

SYSTEM = "You are the support assistant of a game studio. Answer briefly and politely. " * 40  # ~600 tokens
SCENARIOS = {"1 token": 1, "2 tokens, same system prompt": 2, "4 tokens, same system prompt": 4}


async def _measure(mode: PromptCache, requests: int, threads: int) -> dict[str, tuple[float, float]]:
    server = EmbeddedLlamaServer(
        default_model_path(),
        alias="bench",
        slots=2,
        ctx_per_slot=2048,
        threads=threads,
        gpu_layers=0,
        shared_cache=mode == "shared",
    )
    engine = LlamaHttpEngine(await asyncio.to_thread(server.start), "bench", prompt_cache=mode)
    await engine.start()
    results: dict[str, tuple[float, float]] = {}
    try:
        for name, tokens in SCENARIOS.items():
            times, cached = [], []
            for i in range(requests + tokens):  # the first request of each token fills its cache
                body = orjson.dumps(
                    {"prompt": f"{SYSTEM}\nQuestion {i}: how do I reset my password?", "n_predict": 1, "temperature": 0}
                )
                job = Job(
                    kind="llm",
                    model="bench",
                    endpoint="/completion",
                    body=body,
                    stream=False,
                    owner=f"{name}-{i % tokens}",
                )
                began = time.perf_counter()
                status, answer = await engine.run(job, lambda _: None)
                assert status == 200, answer
                if i >= tokens:
                    times.append(time.perf_counter() - began)
                    cached.append(orjson.loads(answer)["timings"]["cache_n"])
            results[name] = (statistics.median(times) * 1000, statistics.mean(cached))
    finally:
        await engine.close()
        server.stop()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6, help="timed requests per scenario")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("| PROMPT_CACHE | scenario | time to first token, median | prompt tokens from the cache, mean |")
    print("|---|---|---:|---:|", flush=True)
    for mode in get_args(PromptCache):
        for name, (ms, cached) in (await _measure(mode, args.requests, args.threads)).items():
            print(f"| {mode} | {name} | {ms:.0f} ms | {cached:.0f} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
