"""Jobs per second one null worker runs, and its CPU per job, without the api in front of it.

    python -m benchmarks.worker_throughput [--seconds 8] [--jobs 64] [--tree DIR]

Starts a private redis-server and `graycat worker null --slots 64`; `--jobs` jobs are kept queued or running
by writing each one's record and pool entry straight to Redis (as the api's ENQUEUE does) and reading its end
from the reply channel, on this checkout's pipelined connection (cheap next to the worker). Prints jobs/s and
the CPU time the worker and Redis spent per job: the worker's own cost, which a run through the api (busier)
hides. `--tree DIR` runs the worker of another checkout, for side-by-side comparisons (see queue_throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import orjson
import psutil

from benchmarks.queue_throughput import cpu_seconds, running
from graycat.jobs import END, Job
from graycat.queue import keys
from graycat.queue.resp import PipelinedConnection, subscribe

CHANNEL = keys.reply_channel("bench")
BODY = orjson.dumps({"prompt": "x", "model": "null"})


async def drive(url: str, jobs: int, seconds: float, measured: list[psutil.Process]) -> tuple[int, float, list[float]]:
    """Jobs done in `seconds` with `jobs` in flight, the seconds taken and the CPU seconds of each `measured`
    process (after a second of warm-up)."""
    conn = PipelinedConnection(url)
    await conn.call("PING")
    ends: dict[str, asyncio.Future[bytes]] = {}

    def on_message(payload: bytes) -> None:  # '<job id><entry id> <event>'
        job_id, event = payload[:32].decode(), payload.split(b" ", 1)[1]
        if event[:1] == END and job_id in ends:
            ends.pop(job_id).set_result(event)

    listener = await subscribe(url, CHANNEL, on_message)
    done = 0

    async def one_after_another(until: float) -> None:
        nonlocal done
        loop = asyncio.get_running_loop()
        while time.perf_counter() < until:
            job = Job(kind="llm", model="null", endpoint="/completion", body=BODY, stream=False, request_id="bench")
            job.reply_to = CHANNEL
            ends[job.id] = end = loop.create_future()
            conn.send("HSET", keys.job(job.id), "state", "pending", "kind", "llm", "model", "null")
            conn.send("XADD", keys.pool("llm", "null"), "*", *(x for kv in job.to_fields().items() for x in kv))
            assert (await end).startswith(END + b"200"), "a null job failed"
            done += 1

    await asyncio.gather(*(one_after_another(time.perf_counter() + 1) for _ in range(jobs)))  # warm-up
    done, before = 0, [cpu_seconds(p) for p in measured]
    start = time.perf_counter()
    await asyncio.gather(*(one_after_another(start + seconds) for _ in range(jobs)))
    elapsed = time.perf_counter() - start
    cpu = [cpu_seconds(p) - b for p, b in zip(measured, before, strict=True)]
    assert listener.transport is not None
    listener.transport.close()
    await conn.close()
    return done, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--jobs", type=int, default=64, help="jobs queued or running at any time")
    parser.add_argument("--tree", type=Path, help="run the worker of this checkout instead")
    args = parser.parse_args()
    with running(args.tree, api=False) as (stack, worker):
        done, elapsed, (worker_cpu, redis_cpu) = asyncio.run(
            drive(stack.env["REDIS_URL"], args.jobs, args.seconds, [worker, stack.redis_server])
        )
    print("| metric | measured |\n|---|---:|")
    print(f"| jobs/s, {args.jobs} in flight | {done / elapsed:,.0f} |")
    print(f"| worker CPU per job | {worker_cpu / done * 1000:.3f} ms |")
    print(f"| Redis CPU per job | {redis_cpu / done * 1000:.3f} ms |")
    tree = f"; graycat of {args.tree}" if args.tree else ""
    print(f"\n{done} jobs in {elapsed:.1f} s{tree}")


if __name__ == "__main__":
    main()
