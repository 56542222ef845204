"""Distributed mode: worker hosts in network namespaces of their own, each reaching Redis (with a password)
over a virtual link, as a machine elsewhere would. Cutting one host's link moves its jobs to the others and
none is lost; adding hosts raises throughput.

Needs root (ip netns), as CI has. The links use a subnet of 10.0.0.0/8 that exists only between this
machine and the namespaces the test makes, and the test removes them at the end.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from graycat.jobs import END
from graycat.queue import keys
from tests.conftest import TOKEN, Cluster, Proc, RedisServer, free_port, wait_until

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTS = 4
SUBNET = f"10.{200 + os.getpid() % 50}"  # one per test process, so parallel runs on one machine do not clash


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class Host:
    """A network namespace joined to this machine by a veth pair: this side `gateway`, its side `address`."""

    index: int

    @property
    def namespace(self) -> str:
        return f"gc{os.getpid()}h{self.index}"

    @property
    def link(self) -> str:  # this machine's end of the veth pair (names have at most 15 characters)
        return f"gc{os.getpid() % 100000}v{self.index}"

    @property
    def gateway(self) -> str:
        return f"{SUBNET}.{self.index}.1"

    def create(self) -> None:
        ip("netns", "add", self.namespace)
        ip("link", "add", self.link, "type", "veth", "peer", "name", "eth0", "netns", self.namespace)
        ip("addr", "add", f"{self.gateway}/30", "dev", self.link)
        ip("link", "set", self.link, "up")
        inside = ["-n", self.namespace]
        ip(*inside, "addr", "add", f"{SUBNET}.{self.index}.2/30", "dev", "eth0")
        ip(*inside, "link", "set", "eth0", "up")
        ip(*inside, "link", "set", "lo", "up")

    def cut(self) -> None:
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", self.link], capture_output=True, timeout=10)


class LinkedRedis(RedisServer):
    """The queue's Redis, with a password, listening on loopback and on every host link."""

    def url_from(self, host: Host) -> str:
        return f"redis://:{self.password}@{host.gateway}:{self.port}/0"


@dataclass
class Site:
    hosts: list[Host]
    redis: LinkedRedis
    cluster: Cluster
    api: str

    def worker(self, host: Host, model: str, *args: str) -> Proc:
        proc = self.cluster.spawn(
            f"worker-{host.index}",
            ["worker", "null", "--model-name", model, *args],
            prefix=["ip", "netns", "exec", host.namespace],
            REDIS_URL=self.redis.url_from(host),
            VISIBILITY_TIMEOUT="5",
        )
        wait_until(lambda: " ready: " in proc.output(), 30, f"the worker on host {host.index}")
        return proc

    def submit(self, model: str, count: int) -> list[str]:
        with httpx.Client(base_url=self.api, headers=AUTH, timeout=10) as http:
            body = {"route": "/completion", "body": {"prompt": "go", "model": model}}
            ids = []
            for _ in range(count):
                resp = http.post("/jobs", json=body)
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["id"])
            return ids

    def records(self, ids: list[str]) -> list[dict[bytes, bytes]]:
        r = self.redis.client()
        with r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(keys.job(job_id))
            return pipe.execute()

    def wait_completed(self, ids: list[str], timeout: float) -> list[dict[bytes, bytes]]:
        wait_until(
            lambda: all(rec.get(b"state") == b"completed" for rec in self.records(ids)),
            timeout,
            f"{len(ids)} jobs to complete",
            interval=0.05,
        )
        return self.records(ids)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    hosts = [Host(i) for i in range(1, HOSTS + 1)]
    try:
        for host in hosts:
            host.create()
        redis = LinkedRedis(
            free_port(),
            tmp_path_factory.mktemp("linked-redis"),
            binds=tuple(h.gateway for h in hosts),
            password=secrets.token_hex(16),
        )
        redis.start()
        cluster = Cluster(redis, Path(tmp_path_factory.mktemp("distributed")))
        try:
            _, base = cluster.api(MAX_WAITING_PER_TOKEN="0")  # one client submits every job here
            yield Site(hosts, redis, cluster, base)
        finally:
            cluster.stop_all()
            redis.stop()
    finally:
        for host in hosts:
            host.remove()


def test_a_host_cut_off_loses_no_job(site: Site) -> None:
    model = "dist-cut"
    workers = [
        site.worker(h, model, "--slots", "2", "--tokens", "10", "--token-delay-ms", "50") for h in site.hosts[:3]
    ]
    victim_host, victim = site.hosts[0], workers[0]
    victim_id = next(
        line.split("worker ", 1)[1].split(" ready", 1)[0] for line in victim.output().splitlines() if " ready: " in line
    )
    ids = site.submit(model, 60)
    wait_until(
        lambda: any(
            rec.get(b"worker") == victim_id.encode() and rec.get(b"state") == b"active" for rec in site.records(ids)
        ),
        20,
        "a job running on the host to cut",
    )
    victim_host.cut()
    cut_at = time.time()
    records = site.wait_completed(ids, 90)
    r = site.redis.client()
    for job_id in ids:  # each answered exactly once
        assert sum(e[b"e"][:1] == END for _, e in r.xrange(keys.events(job_id))) == 1
    taken_over = [rec for rec in records if int(rec[b"attempts"]) > 1]
    assert taken_over, "no job of the cut host was taken over"
    assert all(rec[b"worker"] != victim_id.encode() for rec in taken_over)
    assert all(float(rec[b"finished"]) > cut_at for rec in taken_over)
    for w in workers:
        w.stop(timeout=5)  # the cut one cannot deregister: it is killed after the timeout
    victim_host.restore()


def test_more_hosts_serve_more_jobs(site: Site) -> None:
    """A fixed service time (2 slots x 200 ms per job on each host): jobs/s for 1, 2 and 4 hosts."""
    rates = {}
    for count in (1, 2, 4):
        model = f"dist-rate-{count}"
        workers = [
            site.worker(h, model, "--slots", "2", "--tokens", "1", "--token-delay-ms", "200")
            for h in site.hosts[:count]
        ]
        ids = site.submit(model, 40 * count)
        records = site.wait_completed(ids, 60)
        span = max(float(r[b"finished"]) for r in records) - min(float(r[b"created"]) for r in records)
        rates[count] = len(ids) / span
        for w in workers:  # (a clean stop is tested elsewhere; a worker still up after 10 s is killed)
            w.stop(timeout=10)
    print("\nworker hosts | jobs/s (2 slots x 200 ms per host; ideal 10 per host)")
    for count, rate in rates.items():
        print(f"{count:>12} | {rate:.1f}")
    assert rates[2] > 1.6 * rates[1] and rates[4] > 2.4 * rates[1], rates
