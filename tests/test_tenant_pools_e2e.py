"""One token's polls and open event streams never take the Redis connections another token needs."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import MODEL, TOKEN, Gateway

pytestmark = pytest.mark.e2e
STREAMS = 120  # more than redis-py's default pool of 100 connections


def _finished_job(http: httpx.Client) -> tuple[str, str]:
    """A finished job of the client's token, and the id of its last event."""
    job = http.post("/jobs", json={"route": "/completion", "body": {"model": MODEL, "prompt": "Hi", "n_predict": 1}})
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    deadline = time.monotonic() + 60
    while http.get(f"/jobs/{job_id}").json()["state"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    events = http.get(f"/jobs/{job_id}/events").text
    last = [line[4:] for line in events.splitlines() if line.startswith("id: ")][-1]
    return job_id, last


def test_one_tokens_idle_streams_and_polls_leave_room_for_another(gateway: Gateway, other_token: str) -> None:
    with gateway.client() as mine, gateway.client(other_token) as theirs:
        job_id, last = _finished_job(mine)
        other_job, _ = _finished_job(theirs)

    async def flood() -> tuple[list[int], list[int], str, list[int]]:
        async with (
            httpx.AsyncClient(
                base_url=gateway.base,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=60,
                limits=httpx.Limits(max_connections=None),
            ) as http,
            httpx.AsyncClient(
                base_url=gateway.base, headers={"Authorization": f"Bearer {other_token}"}, timeout=60
            ) as other,
        ):
            streams = [http.stream("GET", f"/jobs/{job_id}/events", params={"from": last}) for _ in range(STREAMS)]
            opened = await asyncio.gather(*(s.__aenter__() for s in streams))  # idle: the job has ended
            try:
                polls = await asyncio.gather(*(http.get(f"/jobs/{job_id}") for _ in range(300)))
                their_polls = await asyncio.gather(*(other.get(f"/jobs/{other_job}") for _ in range(5)))
                their_events = (await other.get(f"/jobs/{other_job}/events")).text
            finally:
                await asyncio.gather(*(s.__aexit__(None, None, None) for s in streams))
            return (
                [r.status_code for r in opened],
                [r.status_code for r in polls],
                their_events,
                [r.status_code for r in their_polls],
            )

    opened, polls, their_events, their_polls = asyncio.run(flood())
    assert 0 < opened.count(200) <= 16 and opened.count(429) == STREAMS - opened.count(200)
    assert set(polls) <= {200, 429}, polls  # never 503: the pool waits for a free connection
    assert their_polls == [200] * 5 and "event: end" in their_events
    with gateway.client() as mine:  # the streams closed gave their places back
        assert mine.get(f"/jobs/{job_id}/events").status_code == 200
