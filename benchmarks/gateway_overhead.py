"""Gateway overhead: the llama.cpp engine called directly vs the same requests through graycat, in one run.

Everything is real: a private redis-server, the embedded xllamacpp engine (in this process, configured as
`graycat worker llm` configures it), and `graycat api` + `graycat worker llm --llama-url <engine>` as
subprocesses, so both sides hit the same engine instance. Direct and gateway requests are interleaved so
that drift (thermal, other load) hits both equally.

    .venv/bin/python -m benchmarks.gateway_overhead [--quick]

Prints a markdown table and writes benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from graycat.config import load_settings
from graycat.ports import free_port
from graycat.workers.engines.llama_server import EmbeddedLlamaServer, default_model_path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
MODEL_NAME = "SmolLM2-135M-Instruct"
TOKEN = "bench"
JSON_HEADERS = {"Content-Type": "application/json"}
GATEWAY_HEADERS = {**JSON_HEADERS, "Authorization": f"Bearer {TOKEN}"}
NOISY_CORES = 0.1  # foreign CPU load (in cores) above which a phase is reported as noisy

ONE_TOKEN = {"prompt": "Hello", "n_predict": 1, "cache_prompt": True}
TTFT = {"prompt": "Once upon a time, in a small village by the sea,", "n_predict": 8, "stream": True}
THROUGHPUT = {
    "prompt": "Write a long story about a cat who learns to fly.",
    "n_predict": 128,
    "ignore_eos": True,
    "stream": True,
}


@dataclass(frozen=True)
class Target:
    """One side of the comparison: a base URL and the headers its requests carry."""

    name: str
    url: str
    headers: dict[str, str]


@dataclass
class Row:
    """One line of the result table."""

    metric: str
    direct: float
    gateway: float
    unit: str
    added: float  # gateway - direct, or gateway / direct when `ratio`
    ratio: bool
    goal: float
    met: bool
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- processes


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:g} s")


@contextlib.contextmanager
def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a subprocess (its output to `log`) for the duration of the block; terminate, then kill, it after."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )  # Ctrl-C reaches us only; we stop it in order
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _remove_unless_failing(folder: Path) -> None:
    """Remove `folder` (called on the way out) unless an exception is on its way: its logs then help."""
    if sys.exc_info()[0] is None:
        shutil.rmtree(folder, ignore_errors=True)


def _raise_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class CpuMeter:
    """CPU used by everything *but* this benchmark (other processes, hypervisor steal), from Linux /proc.

    The engine spins its threads on every core: any foreign load slows it down a lot, and not evenly
    between interleaved samples, so each phase records how many cores were busy elsewhere.
    """

    def __init__(self, pids: list[int], max_wait: float) -> None:
        self.gateway_pids = pids
        self.pids = [os.getpid(), *pids]
        self.tick = os.sysconf("SC_CLK_TCK")
        self.max_wait = max_wait
        self.waited = 0.0

    def _read(self) -> tuple[float, float]:
        try:
            with open("/proc/stat") as f:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
        except (OSError, ValueError):
            return 0.0, 0.0
        return (user + nice + system + irq + softirq + steal) / self.tick, self.cpu(self.pids)

    def cpu(self, pids: list[int]) -> float:
        """CPU seconds (user + system) the processes `pids` have used so far."""
        ticks = 0
        for pid in pids:
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / self.tick

    async def wait_quiet(self) -> None:
        """Wait, up to `max_wait` seconds, for a second in which other processes use under NOISY_CORES."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.max_wait:
            busy0, own0 = self._read()
            await asyncio.sleep(1.0)
            busy1, own1 = self._read()
            if (busy1 - busy0) - (own1 - own0) < NOISY_CORES:
                break
        self.waited += time.monotonic() - t0

    @contextlib.contextmanager
    def phase(self, into: dict[str, Any]) -> Iterator[None]:
        """Store in `into` the average number of cores busy outside the benchmark during the block (the most
        of all blocks given the same dict)."""
        busy0, own0, t0 = *self._read(), time.monotonic()
        yield
        busy1, own1 = self._read()
        foreign = max(0.0, (busy1 - busy0) - (own1 - own0)) / (time.monotonic() - t0)
        into["foreign_cores"] = round(max(foreign, into.get("foreign_cores", 0.0)), 3)


# ----------------------------------------------------------------------------------------------- client


async def completion(session: aiohttp.ClientSession, target: Target, body: bytes) -> float:
    """One non-streaming request; returns its latency in seconds."""
    t0 = time.perf_counter()
    async with session.post(target.url + "/completion", data=body, headers=target.headers) as resp:
        await resp.read()
        elapsed = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"{target.name}: /completion answered {resp.status}")
    return elapsed


@dataclass(frozen=True)
class Streamed:
    """What one streamed completion gave."""

    ttft: float  # seconds from sending the request to the first `data: ` bytes
    events: int  # content events: `data:` events whose chunk is not the final one (`"stop": false`)
    tokens: int  # tokens generated, from the final chunk (several tokens can share an event: split UTF-8)


async def stream(session: aiohttp.ClientSession, target: Target, body: bytes) -> Streamed:
    """One streamed request on a fresh connection, read to its end.

    The first event is timed as soon as its bytes arrive, before the rest of its line.
    """
    t0 = time.perf_counter()
    async with session.post(target.url + "/completion", data=body, headers=target.headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{target.name}: streamed /completion answered {resp.status}: {await resp.read()!r}")
        first = await resp.content.readexactly(6)  # both sides begin with the event itself
        ttft = time.perf_counter() - t0
        if first != b"data: ":
            raise RuntimeError(f"{target.name}: stream starts with {first!r}")
        rest = first + await resp.content.read()
    events = tokens = 0
    for line in rest.split(b"\n"):
        if line.startswith(b"data: "):
            chunk = orjson.loads(line[6:])
            if not chunk.get("stop", False):
                events += 1
            else:
                tokens = int(chunk.get("tokens_predicted") or chunk.get("timings", {}).get("predicted_n", 0))
    return Streamed(ttft, events, tokens)


def pct(samples: list[float], p: int) -> float:
    """The p-th percentile (inclusive, linear interpolation)."""
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


async def interleaved(
    targets: tuple[Target, Target], n: int, once: Callable[[Target], Awaitable[float]]
) -> dict[str, list[float]]:
    """`n` samples per target, alternating targets and which goes first on each round."""
    out: dict[str, list[float]] = {t.name: [] for t in targets}
    for i in range(n):
        for t in targets if i % 2 == 0 else targets[::-1]:
            out[t.name].append(await once(t))
    return out


async def throughput(session: aiohttp.ClientSession, target: Target, concurrency: int) -> tuple[int, int, float]:
    """`concurrency` 128-token streams at once; returns (content events, tokens, wall seconds)."""
    body = orjson.dumps(THROUGHPUT)
    t0 = time.perf_counter()
    results = await asyncio.gather(*(stream(session, target, body) for _ in range(concurrency)))
    return sum(r.events for r in results), sum(r.tokens for r in results), time.perf_counter() - t0


# ------------------------------------------------------------------------------------------ measurements


async def measure(direct: Target, gateway: Target, n: int, rounds: int, meter: CpuMeter) -> list[Row]:
    """Run every measurement, interleaved, after a warm-up; return the table rows."""
    pair = (direct, gateway)
    one = orjson.dumps(ONE_TOKEN)
    ttft_body = orjson.dumps(TTFT)
    timeout = aiohttp.ClientTimeout(total=300)
    keep = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0))
    fresh = aiohttp.ClientSession(
        timeout=timeout, read_bufsize=1 << 20, connector=aiohttp.TCPConnector(limit=0, force_close=True)
    )
    rows: list[Row] = []
    async with keep, fresh:
        print("warming up", file=sys.stderr)
        await interleaved(pair, 10, lambda t: completion(keep, t, one))
        await interleaved(pair, 3, lambda t: _first(stream(fresh, t, ttft_body)))
        for t in pair:
            await throughput(fresh, t, 4)

        print(f"a. {n} x 1-token completions each way", file=sys.stderr)
        extra: dict[str, Any] = {"n": n}
        await meter.wait_quiet()
        with meter.phase(extra):
            cpu0 = meter.cpu(meter.gateway_pids)
            lat = await interleaved(pair, n, lambda t: completion(keep, t, one))
        extra["gateway_cpu_ms_per_request"] = round((meter.cpu(meter.gateway_pids) - cpu0) * 1e3 / n, 2)
        d, g = (sorted(x * 1e3 for x in lat[t.name]) for t in pair)
        rows.append(_diff("1-token completion p50", pct(d, 50), pct(g, 50), "ms", 2.0, extra))
        rows.append(_diff("1-token completion p99", pct(d, 99), pct(g, 99), "ms", 10.0, extra))

        print(f"b. {n} x streamed time to first token each way", file=sys.stderr)
        extra = {"n": n}
        await meter.wait_quiet()
        with meter.phase(extra):
            cpu0 = meter.cpu(meter.gateway_pids)
            ttft = await interleaved(pair, n, lambda t: _first(stream(fresh, t, ttft_body)))
        extra["gateway_cpu_ms_per_request"] = round((meter.cpu(meter.gateway_pids) - cpu0) * 1e3 / n, 2)
        d, g = (sorted(x * 1e3 for x in ttft[t.name]) for t in pair)
        extra |= {"p99_direct": pct(d, 99), "p99_gateway": pct(g, 99)}
        rows.append(_diff("stream TTFT p50", pct(d, 50), pct(g, 50), "ms", 3.0, extra))

        for concurrency in (1, 4):
            print(f"c. {rounds} rounds x {concurrency} concurrent 128-token streams each way", file=sys.stderr)
            per_round: dict[str, list[float]] = {t.name: [] for t in pair}
            events_per_s: dict[str, list[float]] = {t.name: [] for t in pair}
            extra = {"rounds": rounds, "per_round": per_round, "content_events_per_s": events_per_s}
            gateway_cpu = 0.0
            for r in range(rounds):
                await meter.wait_quiet()
                with meter.phase(extra):  # the foreign load of the noisiest round
                    for t in pair if r % 2 == 0 else pair[::-1]:
                        cpu0 = meter.cpu(meter.gateway_pids)
                        events, tokens, secs = await throughput(fresh, t, concurrency)
                        if t is gateway:
                            gateway_cpu += meter.cpu(meter.gateway_pids) - cpu0
                        if tokens != 128 * concurrency:
                            raise RuntimeError(f"{t.name}: {tokens} tokens, expected {128 * concurrency}")
                        per_round[t.name].append(round(tokens / secs, 1))
                        events_per_s[t.name].append(round(events / secs, 1))
            extra["gateway_cpu_ms_per_token"] = round(gateway_cpu * 1e3 / (rounds * 128 * concurrency), 3)
            # the median round: a burst of foreign load stalls the engine for seconds, spoiling a round or two
            dtps, gtps = (statistics.median(per_round[t.name]) for t in pair)
            rows.append(
                Row(
                    f"stream tok/s, {concurrency} concurrent",
                    dtps,
                    gtps,
                    "tok/s",
                    gtps / dtps,
                    True,
                    0.97,
                    gtps / dtps >= 0.97,
                    extra,
                )
            )
    return rows


async def _first(streamed: Awaitable[Streamed]) -> float:
    return (await streamed).ttft


def _diff(metric: str, direct: float, gateway: float, unit: str, goal: float, extra: dict[str, Any]) -> Row:
    added = gateway - direct
    return Row(metric, direct, gateway, unit, added, False, goal, added <= goal, extra)


def table(rows: list[Row]) -> str:
    """The rows as a markdown table."""
    lines = ["| metric | direct | gateway | added/ratio | goal | met? |", "|---|---:|---:|---:|---|:---:|"]
    for r in rows:
        added = f"x{r.added:.3f}" if r.ratio else f"{r.added:+.2f} {r.unit}"
        goal = f"ratio >= {r.goal:g}" if r.ratio else f"added <= {r.goal:g} {r.unit}"
        lines.append(
            f"| {r.metric} | {r.direct:.2f} {r.unit} | {r.gateway:.2f} {r.unit} | {added} | {goal} "
            f"| {'yes' if r.met else 'NO'} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- main


@dataclass
class Deployment:
    """The engine (in this process) and the gateway in front of it, with the gateway's process ids."""

    engine: EmbeddedLlamaServer
    engine_url: str
    gateway_url: str
    pids: list[int]


@contextlib.contextmanager
def deployment(slots: int = 4, n_predict: int = -1, threads: int | None = None) -> Iterator[Deployment]:
    """A private redis-server, the embedded engine (`n_predict`: tokens for a request that sets no limit;
    `threads`: all cores unless given), and `graycat api` + `graycat worker llm --llama-url` in front of it,
    for the duration of the block."""
    redis_port, api_port = free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="graycat-bench-"))
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "API_TOKENS": TOKEN,
        "RATE_LIMIT_RPM": "0",
        "RATE_LIMIT_CONCURRENCY": "0",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("GRAYCAT_MODEL", None)
    bin_dir = Path(sys.executable).parent
    with contextlib.ExitStack() as stack:
        stack.callback(_remove_unless_failing, logs)
        redis = stack.enter_context(
            spawn(
                ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                logs / "redis.log",
            )
        )
        _wait_port(redis_port, redis, 10)
        print("loading the engine", file=sys.stderr)
        defaults = load_settings()  # the engine as `graycat worker llm` configures it (poll, niceness)
        engine = EmbeddedLlamaServer(
            default_model_path(),
            alias=MODEL_NAME,
            slots=slots,
            ctx_per_slot=1024,
            threads=threads,
            gpu_layers=0,
            poll=defaults.poll,
            nice=defaults.nice,
            n_predict=n_predict,
        )
        engine_url = engine.start().rstrip("/")
        stack.callback(engine.stop)
        api = stack.enter_context(
            spawn([str(bin_dir / "graycat"), "api", "--port", str(api_port)], logs / "api.log", env)
        )
        worker = stack.enter_context(
            spawn(
                [str(bin_dir / "graycat"), "worker", "llm", "--llama-url", engine_url, "--model-name", MODEL_NAME],
                logs / "worker.log",
                env,
            )
        )
        gateway_url = f"http://127.0.0.1:{api_port}"
        _wait_health(gateway_url, (api, worker), logs)
        print(f"engine {engine_url}, gateway {gateway_url}, logs in {logs}", file=sys.stderr)
        yield Deployment(engine, engine_url, gateway_url, [redis.pid, api.pid, worker.pid])


def host_info(load_before: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }


def run(n: int, rounds: int, max_wait: float) -> dict[str, Any]:
    """Set everything up, measure, tear everything down; return the results."""
    load_before = os.getloadavg()
    with deployment() as d:
        meter = CpuMeter(d.pids, max_wait)
        rows = asyncio.run(
            measure(
                Target("direct", d.engine_url, JSON_HEADERS),
                Target("gateway", d.gateway_url, GATEWAY_HEADERS),
                n,
                rounds,
                meter,
            )
        )
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "requests": n,
        "rounds": rounds,
        "waited_for_quiet_s": round(meter.waited, 1),
        "host": host_info(load_before),
        "engine": {
            "model": MODEL_NAME,
            "slots": 4,
            "ctx_per_slot": 1024,
            "threads": d.engine.threads,
            "poll": d.engine.poll,
            "nice": d.engine.nice,
        },
        "rows": [r.__dict__ for r in rows],
        "all_met": all(r.met for r in rows),
    }


def _wait_health(url: str, procs: tuple[subprocess.Popen[bytes], ...], logs: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args!r} exited with {p.returncode}; see the logs in {logs}")
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if json.loads(resp.read()).get("status") == "ok":
                    return
        time.sleep(0.1)
    raise TimeoutError(f"the gateway at {url} was not healthy after {timeout:g} s; see the logs in {logs}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gateway_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="40 requests per measurement and 3 rounds")
    parser.add_argument("-n", "--requests", type=int, help="requests per side for a. and b. (default 200)")
    parser.add_argument("--rounds", type=int, help="throughput rounds per side (default 7)")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=60.0,
        metavar="S",
        help="before each phase and round, wait up to S seconds for other processes to go quiet "
        "(default 60; 0: never wait)",
    )
    args = parser.parse_args()
    n = args.requests or (40 if args.quick else 200)
    rounds = args.rounds or (3 if args.quick else 7)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, _raise_sigterm)
    try:
        results = run(n, rounds, args.max_wait)
    except KeyboardInterrupt:
        print("interrupted; everything was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    print(table([Row(**r) for r in results["rows"]]))
    print(
        f"\n{n} requests per side for a./b., median of {rounds} interleaved rounds for tok/s; "
        f"{results['host']['cpus']} CPUs"
    )
    save(results, RESULTS)


def save(results: dict[str, Any], path: Path) -> None:
    """Flag the noisy measurements of `results` and write them to `path` as JSON."""
    for row in results["rows"]:
        foreign = row["extra"].get("foreign_cores", 0.0)
        if foreign > NOISY_CORES:
            print(f"noisy: {row['metric']}: other processes kept {foreign:.2f} cores busy meanwhile")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
