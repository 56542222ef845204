"""`graycat token create | list | revoke`: managed tokens, straight in Redis (REDIS_URL)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from graycat import tokens
from graycat.config import Settings
from graycat.queue.connection import connect


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="managed API tokens (kept in Redis as hashes)")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print its secret (shown once)")
    create.add_argument("--name", required=True)
    create.add_argument("--rpm", type=int, default=0, help="requests per minute (default: RATE_LIMIT_RPM)")
    create.add_argument("--concurrency", type=int, default=0,
                        help="requests in flight (default: RATE_LIMIT_CONCURRENCY)")
    create.add_argument("--models", default="", help="comma-separated models it may use (default: all)")
    create.add_argument("--daily-tokens", type=int, default=0, help="generated tokens per day, UTC (0: no quota)")
    create.add_argument("--daily-images", type=int, default=0, help="images per day, UTC (0: no quota)")
    create.add_argument("--expires", type=datetime.fromisoformat, help="date or time (ISO 8601, UTC) it stops working")
    create.add_argument("--admin", action="store_true", help="may use the admin routes")
    actions.add_parser("list", help="list the managed tokens (never their secrets)")
    revoke = actions.add_parser("revoke", help="revoke tokens by name or fingerprint")
    revoke.add_argument("name")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    redis = connect(settings.resolved_redis_url())
    try:
        if args.action == "create":
            info = tokens.TokenInfo.new(args.name, rpm=args.rpm, concurrency=args.concurrency,
                                        models=[m.strip() for m in args.models.split(",") if m.strip()],
                                        daily_tokens=args.daily_tokens, daily_images=args.daily_images,
                                        expires=args.expires, admin=args.admin)
            print(await tokens.create(redis, info))
            print(f"token '{args.name}' created (fingerprint {info.fingerprint}); its secret above is not kept",
                  file=sys.stderr)
        elif args.action == "list":
            for t in await tokens.list_all(redis):
                expires = datetime.fromtimestamp(t.expires, UTC).isoformat() if t.expires else "never"
                state = "revoked" if t.revoked else "active"
                print(f"{t.fingerprint}  {t.name:<20} {state:<8} rpm={t.rpm or 'default'} "
                      f"concurrency={t.concurrency or 'default'} models={','.join(t.models) or 'all'} "
                      f"daily_tokens={t.daily_tokens or '-'} daily_images={t.daily_images or '-'} "
                      f"expires={expires}{' admin' if t.admin else ''}")
        else:
            revoked = await tokens.revoke(redis, args.name)
            if not revoked:
                print(f"graycat token: no token named or fingerprinted '{args.name}'", file=sys.stderr)
                return 1
            print(f"revoked {revoked} token(s)", file=sys.stderr)
        return 0
    finally:
        await redis.aclose()
