"""`graycat pull | models | rm`: the models folder (GRAYCAT_MODELS_DIR) from the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from graycat.config import Settings
from graycat.queue import refresh
from graycat.queue.connection import connect, redact
from graycat.store import folder, sd
from graycat.store.download import INTERRUPTED
from graycat.store.progress import ProgressLine
from graycat.store.pull import pull
from graycat.store.remote import PullError
from graycat.token_commands import redis_url

Command = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]", str, str, str], argparse.ArgumentParser]
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
    return 0


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
