"""Parsing Redis Sentinel URLs (REDIS_URL=redis+sentinel://...)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from graycat.config import Settings
from graycat.queue.sentinel import SentinelUrl, parse


def test_every_part_of_a_sentinel_url() -> None:
    url = "rediss+sentinel://app:p%40ss%3Aw@s1:26380,[::1]:26381,s3/graycat/2?sentinel_password=s%2Bp"
    assert parse(url) == SentinelUrl(
        (("s1", 26380), ("::1", 26381), ("s3", 26379)), "graycat", 2, "app", "p@ss:w", "s+p", tls=True
    )
    assert parse("redis+sentinel://s1/mymaster") == SentinelUrl((("s1", 26379),), "mymaster")


def test_plain_urls_are_not_sentinel_urls() -> None:
    assert parse("redis://127.0.0.1:6379/0") is None and parse("unix:///run/redis.sock") is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel://s1:26379", "service name"),
        ("redis+sentinel:///graycat", "service name"),
        ("redis+sentinel://s1:port/graycat", "host:port"),
        ("redis+sentinel://s1/graycat/zero", "not a number"),
        ("redis+sentinel://::1/graycat", "brackets"),
        ("redis+sentinel://[::1/graycat", "[IPv6]:port"),
        ("redis+sentinel://app@s1/graycat", "needs its password"),
    ],
)
def test_malformed_sentinel_urls_say_what_is_wrong(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse(url)
    with pytest.raises(ValidationError, match=re.escape(why)):
        Settings(REDIS_URL=url)


def test_settings_accept_a_sentinel_url() -> None:
    url = "redis+sentinel://:secret@s1,s2/graycat/0"
    assert Settings(REDIS_URL=url).resolved_redis_url() == url
