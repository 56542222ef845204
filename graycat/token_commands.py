"""`graycat token create | list | revoke`: managed tokens, straight in Redis (REDIS_URL)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from graycat import data_folder, tokens
from graycat.config import Settings
from graycat.queue.connection import connect, redact

Command = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]", str, str, str], argparse.ArgumentParser]
WHERE = (
    "Redis: REDIS_URL, else the one of the `graycat up` running on GRAYCAT_DATA_DIR, else "
    "REDIS_HOST/REDIS_PORT/REDIS_PASS."
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], command: Command) -> None:
    token = command(sub, "token", "managed API tokens (kept in Redis as hashes)", WHERE)
    actions = token.add_subparsers(dest="action", required=True)
    create = command(actions, "create", "create a token and print its secret (shown once)", WHERE)
    create.add_argument("--name", required=True, help="a name for it, shown by `list` and used by `revoke`")
    create.add_argument("--rpm", type=int, default=0, help="requests per minute (default: RATE_LIMIT_RPM)")
    create.add_argument(
        "--concurrency", type=int, default=0, help="requests in flight (default: RATE_LIMIT_CONCURRENCY)"
    )
    create.add_argument("--models", default="", help="comma-separated models it may use (default: all)")
    create.add_argument(
        "--daily-tokens", type=int, default=0, help="generated tokens per day, UTC (default 0: no quota)"
    )
    create.add_argument("--daily-images", type=int, default=0, help="images per day, UTC (default 0: no quota)")
    create.add_argument(
        "--expires", type=datetime.fromisoformat, help="date or time (ISO 8601, UTC) it stops working (default: never)"
    )
    create.add_argument("--admin", action="store_true", help="may use the admin routes (default: no)")
    command(actions, "list", "list the managed tokens (never their secrets)", WHERE)
    revoke = command(actions, "revoke", "revoke tokens by name or fingerprint", WHERE)
    revoke.add_argument("name", help="a token's name (all tokens of that name) or fingerprint")


def redis_url(settings: Settings) -> str:
    """REDIS_URL; else, unless REDIS_HOST / REDIS_PORT / REDIS_PASS are set, the Redis of the `graycat up` running
    on the data folder; else the URL those settings build."""
    explicit = {"redis_url", "redis_host", "redis_port", "redis_pass"} & settings.model_fields_set
    running = None if explicit else data_folder.running_redis_url(settings.data_dir)
    return running or settings.resolved_redis_url()


def run(args: argparse.Namespace, settings: Settings) -> int:
    url = redis_url(settings)
    try:
        return asyncio.run(_run(args, connect(url)))
    except (RedisError, OSError) as exc:
        print(
            f"graycat token: Redis unreachable at {redact(url)}: {exc or type(exc).__name__} (set REDIS_URL, or "
            "start `graycat up` in this folder)",
            file=sys.stderr,
        )
        return 1


async def _run(args: argparse.Namespace, redis: Redis) -> int:
    try:
        if args.action == "create":
            info = tokens.TokenInfo.new(
                args.name,
                rpm=args.rpm,
                concurrency=args.concurrency,
                models=[m.strip() for m in args.models.split(",") if m.strip()],
                daily_tokens=args.daily_tokens,
                daily_images=args.daily_images,
                expires=args.expires,
                admin=args.admin,
            )
            print(await tokens.create(redis, info))
            print(
                f"token '{args.name}' created (fingerprint {info.fingerprint}); its secret above is not kept",
                file=sys.stderr,
            )
        elif args.action == "list":
            for t in await tokens.list_all(redis):
                expires = datetime.fromtimestamp(t.expires, UTC).isoformat() if t.expires else "never"
                state = "revoked" if t.revoked else "active"
                print(
                    f"{t.fingerprint}  {t.name:<20} {state:<8} rpm={t.rpm or 'default'} "
                    f"concurrency={t.concurrency or 'default'} models={','.join(t.models) or 'all'} "
                    f"daily_tokens={t.daily_tokens or '-'} daily_images={t.daily_images or '-'} "
                    f"expires={expires}{' admin' if t.admin else ''}"
                )
        else:
            revoked = await tokens.revoke(redis, args.name)
            if not revoked:
                print(f"graycat token: no token named or fingerprinted '{args.name}'", file=sys.stderr)
                return 1
            print(f"revoked {revoked} token(s)", file=sys.stderr)
        return 0
    finally:
        await redis.aclose()
