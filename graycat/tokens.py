"""Managed API tokens: kept in Redis only as the SHA-256 of their secret, so every API replica sees a new or
revoked token at once and a copy of Redis holds no usable secret."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from graycat.queue import keys
from graycat.queue.replies import text

SECRET_PREFIX = "gc_"


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def fingerprint(secret: str) -> str:
    """A short, non-reversible name for a token: what records, logs and metrics keep instead of the token."""
    return token_hash(secret)[:16]


@dataclass
class TokenInfo:
    """A token's record. Limits of 0 mean "the server's default"; `models` empty means every model."""

    name: str
    fingerprint: str
    rpm: int = 0
    concurrency: int = 0
    models: list[str] = field(default_factory=list)
    daily_tokens: int = 0
    daily_images: int = 0
    expires: float = 0.0  # unix time; 0: never
    admin: bool = False
    revoked: bool = False
    created: float = 0.0

    @classmethod
    def new(
        cls,
        name: str,
        *,
        rpm: int = 0,
        concurrency: int = 0,
        models: list[str] | None = None,
        daily_tokens: int = 0,
        daily_images: int = 0,
        expires: datetime | None = None,
        admin: bool = False,
    ) -> TokenInfo:
        """A token to create; an expiry without a time zone is UTC."""
        when = expires.replace(tzinfo=expires.tzinfo or UTC).timestamp() if expires else 0.0
        return cls(
            name=name,
            fingerprint="",
            rpm=rpm,
            concurrency=concurrency,
            models=models or [],
            daily_tokens=daily_tokens,
            daily_images=daily_images,
            expires=when,
            admin=admin,
        )

    def to_redis(self) -> dict[str, str]:
        out = {k: str(v) for k, v in asdict(self).items() if k not in ("models", "admin", "revoked")}
        return {
            **out,
            "models": ",".join(self.models),
            "admin": str(int(self.admin)),
            "revoked": str(int(self.revoked)),
        }

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes] | dict[str, str]) -> TokenInfo:
        d = {text(k): text(v) for k, v in raw.items()}
        return cls(
            name=d.get("name", ""),
            fingerprint=d.get("fingerprint", ""),
            rpm=int(d.get("rpm", 0)),
            concurrency=int(d.get("concurrency", 0)),
            models=[m for m in d.get("models", "").split(",") if m],
            daily_tokens=int(d.get("daily_tokens", 0)),
            daily_images=int(d.get("daily_images", 0)),
            expires=float(d.get("expires", 0)),
            admin=d.get("admin") == "1",
            revoked=d.get("revoked") == "1",
            created=float(d.get("created", 0)),
        )

    def public(self) -> dict[str, Any]:
        """What an admin may see (never the secret, which is not kept)."""
        return asdict(self)


async def create(redis: Redis, info: TokenInfo) -> str:
    """Store a new token and return its secret (shown once: only its hash is kept)."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    info.fingerprint, info.created = fingerprint(secret), time.time()
    digest = token_hash(secret)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.token(digest), mapping=info.to_redis())  # type: ignore[arg-type]
        pipe.sadd(keys.TOKENS, digest)
        await pipe.execute()
    return secret


async def list_all(redis: Redis) -> list[TokenInfo]:
    digests = sorted(text(d) for d in await redis.smembers(keys.TOKENS))
    async with redis.pipeline(transaction=False) as pipe:
        for digest in digests:
            pipe.hgetall(keys.token(digest))
        records = await pipe.execute()
    return sorted((TokenInfo.from_redis(r) for r in records if r), key=lambda t: t.created)


async def revoke(redis: Redis, name_or_fingerprint: str) -> int:
    """Revoke the tokens of that name or fingerprint; how many. The record stays, marked, for the audit."""
    revoked = 0
    for digest in await redis.smembers(keys.TOKENS):
        key = keys.token(text(digest))
        name, fp = await redis.hmget(key, ["name", "fingerprint"])
        if name_or_fingerprint.encode() in (name, fp):
            await redis.hset(key, "revoked", "1")
            revoked += 1
    return revoked
