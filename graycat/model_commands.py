"""`graycat pull | models | rm`: the models folder (GRAYCAT_MODELS_DIR) from the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from graycat.config import Settings
from graycat.queue import pulls, refresh
from graycat.queue.connection import connect, redact
from graycat.store import folder, sd
from graycat.store.download import INTERRUPTED
from graycat.store.progress import ProgressLine
from graycat.store.pull import pull
from graycat.store.remote import PullError
from graycat.token_commands import redis_url

Command = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]", str, str, str], argparse.ArgumentParser]
WORKER_GRACE_S = 60.0  # past the wait for a worker to take a pull: for it to list the repository and answer
ALIVE_CHECK_S = 5.0  # how often the pulling worker is looked for among the live ones while it reports nothing
WHERE = "The models folder: GRAYCAT_MODELS_DIR (default: GRAYCAT_DATA_DIR/models)."
REFS = (
    "REF: hf:OWNER/REPO[:QUANT] (the repository's GGUF of that quantisation, e.g. Q4_K_M; without a tag its "
    "only GGUF or its Q4_K_M), hf:OWNER/REPO/path/file.gguf, or an https:// URL. HF_TOKEN for gated "
    "repositories, HF_ENDPOINT for a mirror."
)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], command: Command) -> None:
    get = command(
        sub,
        "pull",
        "download a GGUF model into the models folder",
        f"{REFS} Resumes an interrupted download, checks the SHA-256 (the Hub's, or --sha256) before "
        f"moving the file into place, and checks the free disk space first. {WHERE}",
    )
    get.add_argument("ref", metavar="REF", help="what to pull (see above)")
    get.add_argument("--sha256", help="the file's expected SHA-256 (default: the Hub's; none for a URL)")
    get.add_argument(
        "--worker",
        metavar="ID",
        help="have the running LLM worker ID pull it onto its own disk and serve it (asked through Redis, as POST "
        "/api/pull does; its id as /queue/status or `graycat models` lists it); default: pull into this machine's "
        "models folder",
    )
    get.add_argument(
        "--sd",
        action="store_true",
        help="an image model: into SD_MODELS_DIR's A1111 layout (a .safetensors/.ckpt file, or a "
        "diffusers repository as a folder), then the running SD workers read their folder again "
        "(default: a GGUF into the models folder)",
    )
    get.add_argument(
        "--kind",
        choices=sorted(sd.FOLDERS),
        default="checkpoint",
        help="with --sd: which folder (checkpoint: Stable-diffusion, lora: Lora, vae: VAE, controlnet: "
        "ControlNet; default checkpoint)",
    )
    command(
        sub,
        "models",
        "list the models in the models folder (name, family, quantisation, size, the live workers serving it, origin)",
        WHERE,
    )
    rm = command(sub, "rm", "delete a model from the models folder", WHERE)
    rm.add_argument("name", metavar="NAME", help="its name (as `graycat models` lists it) or the reference pulled")


def run(args: argparse.Namespace, settings: Settings) -> int:
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per HTTP request would bury the progress
    models = settings.models_folder()
    if args.command == "pull" and args.worker:
        return _pull_on_worker(args, settings)
    if args.command == "pull" and args.sd:
        return _pull_sd(args, settings)
    if args.command == "pull":
        line = ProgressLine(args.ref)
        try:
            path = pull(args.ref, models, sha256=args.sha256, progress=line)
        except PullError as exc:
            line.end()
            print(f"graycat pull: {exc}", file=sys.stderr)
            return 130 if exc.status == INTERRUPTED else 1
        line.end()
        print(f"pulled {path.stem} ({folder.human(path.stat().st_size)}): {path}")
        print(f"serve it: graycat worker llm --model {args.ref}")
        return 0
    if args.command == "models":
        _list(models, settings)
        return 0
    found = folder.find(models, args.name)
    if found is None:
        names = ", ".join(m.name for m in folder.models(models)) or "none"
        print(f"graycat rm: no model {args.name!r} in {models} (there: {names})", file=sys.stderr)
        return 1
    folder.remove(found)
    print(f"deleted {found.name} ({folder.human(found.size)})")
    if serving := (_serving(settings) or {}).get(found.name):
        print(
            f"worker(s) {', '.join(serving)} still serve it from the open file until they restart; DELETE /api/delete "
            "on the gateway stops them at once"
        )
    return 0


def _pull_on_worker(args: argparse.Namespace, settings: Settings) -> int:
    if args.sd or args.sha256:
        print(
            "graycat pull --worker: a worker pulls GGUF models, checked against the Hub (no --sd, --sha256)",
            file=sys.stderr,
        )
        return 1
    url = redis_url(settings)
    try:
        return asyncio.run(_ask_worker(url, args.worker, args.ref, settings.queue_timeout_for("llm")))
    except (RedisError, OSError) as exc:
        print(f"graycat pull: Redis unreachable at {redact(url)}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ngraycat pull: stopped following; worker {args.worker} goes on with the pull", file=sys.stderr)
        return 130


async def _ask_worker(url: str, worker: str, ref: str, wait_s: float) -> int:
    """Have `worker` pull `ref` and follow its progress: 0 once it serves the model."""
    redis = connect(url)
    try:
        live = await refresh.live_workers(redis)
        named = next((w for w in live if w.get("id") == worker), None)
        if named is None or not named.get("pulls"):
            takers = ", ".join(sorted(str(w["id"]) for w in live if w.get("pulls"))) or "none"
            why = (
                "is not live"
                if named is None
                else "takes no pulls (an external server, the null engine or an SD worker)"
            )
            print(f"graycat pull: worker {worker} {why}; live workers that take pulls: {takers}", file=sys.stderr)
            return 1
        asked, entry = await pulls.ask(redis, ref, worker=worker, wait_s=wait_s)
        line, started, checked = ProgressLine(f"{ref} on {worker}"), False, time.monotonic()
        events = pulls.follow(redis, asked.id)
        try:
            async for event in events:
                if event is None and not started and time.time() > asked.deadline + WORKER_GRACE_S:
                    await pulls.withdraw(redis, worker, entry)
                    print(f"graycat pull: worker {worker} did not take the pull within {wait_s:g} s", file=sys.stderr)
                    return 1
                if event is None and started and time.monotonic() - checked > ALIVE_CHECK_S:
                    checked = time.monotonic()
                    if worker not in {w.get("id") for w in await refresh.live_workers(redis)}:
                        line.end()
                        print(f"graycat pull: worker {worker} stopped during the pull", file=sys.stderr)
                        return 1
                if event is None:
                    continue
                started = True
                if "error" in event:
                    line.end()
                    print(f"graycat pull: {event['error']}", file=sys.stderr)
                    return 1
                if "completed" in event:
                    line(int(event["completed"]), int(event.get("total") or 0) or None)
                elif event.get("status") == "success":
                    line.end()
                    print(f"worker {worker} pulled {ref} and serves it as {event['model']}")
                    return 0
        finally:
            await events.aclose()
        return 1
    finally:
        await redis.aclose()


def _pull_sd(args: argparse.Namespace, settings: Settings) -> int:
    if settings.sd_models_dir is None:
        print("graycat pull --sd: set SD_MODELS_DIR (the SD workers' A1111-style models folder)", file=sys.stderr)
        return 1
    line = ProgressLine(args.ref)
    try:
        path = sd.pull_sd(args.ref, settings.sd_models_dir, args.kind, sha256=args.sha256, progress=line)
    except PullError as exc:
        line.end()
        print(f"graycat pull: {exc}", file=sys.stderr)
        return 130 if exc.status == INTERRUPTED else 1
    line.end()
    print(f"pulled {args.kind} {path.name}: {path}")
    url = redis_url(settings)
    try:
        done = asyncio.run(_refresh(url, settings.sd_refresh_timeout))
    except (RedisError, OSError) as exc:
        print(
            f"no running SD workers told (Redis unreachable at {redact(url)}: {exc or type(exc).__name__}); they "
            "read it when they start or on POST /sdapi/v1/refresh-checkpoints"
        )
        return 0
    if done.late or done.failed:
        print(f"graycat pull: SD workers did not read it yet: {', '.join(done.late + done.failed)}", file=sys.stderr)
        return 1
    print(
        f"{len(done.asked)} running SD worker(s) read their models folder again"
        if done.asked
        else "no SD worker running; they read it when they start"
    )
    return 0


async def _refresh(url: str, timeout: float) -> refresh.Refreshed:
    redis = connect(url)
    try:
        return await refresh.refresh(redis, "sd", timeout)
    finally:
        await redis.aclose()


def _list(models: Path, settings: Settings) -> None:
    listed = folder.models(models)
    serving = _serving(settings)
    if listed:
        width = max(len(m.name) for m in listed)
        print(f"{'NAME':<{width}}  {'FAMILY':<8}  {'QUANT':<8}  {'SIZE':>9}  {'SERVED BY':<20}  FROM")
        for m in listed:
            where = "?" if serving is None else ",".join(serving.get(m.name, [])) or "-"
            print(
                f"{m.name:<{width}}  {m.family or '-':<8}  {m.quant or '-':<8}  {folder.human(m.size):>9}  "
                f"{where:<20}  {m.ref or 'copied by hand'}"
            )
        if serving is None:
            print("(SERVED BY unknown: Redis unreachable)")
        if again := folder.served_at_start(models):
            print(f"served again by the workers reading this folder when they start: {', '.join(sorted(again))}")
    else:
        print(f"no models in {models}; get one with `graycat pull REF`")
    for name, size in folder.partials(models):
        print(f"unfinished: {name} ({folder.human(size)} received; pulling it again resumes)")


def _serving(settings: Settings) -> dict[str, list[str]] | None:
    """model -> ids of the live workers serving it now; None when Redis cannot be reached."""
    try:
        workers = asyncio.run(_live_workers(redis_url(settings)))
    except (RedisError, OSError):
        return None
    found: dict[str, list[str]] = {}
    for worker in sorted(workers, key=lambda w: str(w.get("id"))):
        for model in worker.get("models", []):
            found.setdefault(model, []).append(str(worker.get("id")))
    return found


async def _live_workers(url: str) -> list[dict[str, Any]]:
    redis = connect(url)
    try:
        return await refresh.live_workers(redis)
    finally:
        await redis.aclose()
