"""llama.cpp's own server test suite, run against the engine called directly and through the gateway in
front of the same engine, side by side.

    .venv/bin/python -m benchmarks.llamacpp_suite PATH/llama.cpp/tools/server/tests [unit/test_x.py ...] [-k EXPR]

PATH is a local copy of llama.cpp's `tools/server/tests` (another project's code: it stays out of this
repository), best of the version the worker embeds (xllamacpp's llama.cpp). It needs the suite's own
requirements (requests, wget, openai...). The suite runs in its external-server mode (DEBUG_EXTERNAL=1,
PORT): each test's server start and stop do nothing and its requests go to the running server, the engine
(SmolLM2, not the suite's own tiny models, so tests of exact outputs fail on both sides alike; 64 tokens for
a request that sets no limit, as the suite's server presets) or the gateway (MODEL_ALIASES=*=default: any
model name, as a single-model llama-server takes), whose token benchmarks/llamacpp_suite_plugin.py adds to
the suite's requests.

Prints per test file the tests passing on each side, then every test that passes direct and fails through
the gateway, with the first line of its failure; docs/clients.md names the deliberate differences.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

from benchmarks.gateway_overhead import TOKEN, deployment
from benchmarks.junit import Outcomes, parse

ROOT = Path(__file__).resolve().parent.parent


def run_suite(suite: Path, url: str, token: str | None, files: list[str], keyword: str | None, out: Path) -> Outcomes:
    """Each test's outcome against the server at `url`; pytest's output and report go to `out`."""
    env = {
        **os.environ,
        "DEBUG_EXTERNAL": "1",
        "PORT": str(urlparse(url).port),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("GRAYCAT_SUITE_TOKEN", None)
    if token:
        env["GRAYCAT_SUITE_TOKEN"] = token
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.xml"
    report.unlink(missing_ok=True)
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "benchmarks.llamacpp_suite_plugin",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        *(files or ["unit"]),
        *(["-k", keyword] if keyword else []),
    ]
    with (out / "pytest.log").open("wb") as log:
        subprocess.run(args, cwd=suite, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    return parse(report) if report.exists() else {}


def table(direct: Outcomes, gateway: Outcomes) -> str:
    per_file: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    lost: list[str] = []
    for test in sorted(direct.keys() | gateway.keys()):
        row = per_file[test.split("::")[0]]
        d, g = direct.get(test, ("missing", ""))[0], gateway.get(test, ("missing", ""))
        row[0] += 1
        row[1] += d == "passed"
        row[2] += g[0] == "passed"
        if d == "passed" and g[0] != "passed":
            row[3] += 1
            lost.append(f"- {test}: {g[1] or g[0]}")
    lines = [
        "| test file | tests | pass direct | pass through gateway | pass direct, fail gateway |",
        "|---|---:|---:|---:|---:|",
    ]
    totals = [0, 0, 0, 0]
    for name, row in sorted(per_file.items()):
        lines.append(f"| {name} | " + " | ".join(map(str, row)) + " |")
        totals = [a + b for a, b in zip(totals, row, strict=True)]
    lines.append("| **all** | " + " | ".join(f"**{t}**" for t in totals) + " |")
    if lost:
        lines += ["", "Pass direct, fail through the gateway:", *lost]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.llamacpp_suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("suite", type=Path, help="a local copy of llama.cpp's tools/server/tests")
    parser.add_argument("files", nargs="*", help="test files or ids, relative to the suite (default: unit)")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    parser.add_argument("--slots", type=int, default=2, help="engine slots (default 2)")
    parser.add_argument(
        "--n-predict",
        type=int,
        default=64,
        help="the engine's token limit for requests that set none, as the suite's server presets (default 64)",
    )
    parser.add_argument(
        "--out", type=Path, help="keep each side's pytest output and report here (default: a temporary folder)"
    )
    args = parser.parse_args()
    if not (args.suite / "utils.py").is_file():
        parser.error(f"{args.suite} is not llama.cpp's tools/server/tests (no utils.py)")
    os.environ["MODEL_ALIASES"] = "*=default"  # the gateway takes any model name, as a single-model llama-server
    # The suite checks answers, not speed: one engine thread at normal priority stays quick on a busy machine
    # (several threads of a niced engine there wait on each other, at a few tokens per second).
    os.environ["LLM_NICE"] = "0"
    with tempfile.TemporaryDirectory() as tmp, deployment(slots=args.slots, n_predict=args.n_predict, threads=1) as d:
        out = args.out or Path(tmp)
        print(f"running the suite against the engine (output in {out / 'engine'})", file=sys.stderr)
        direct = run_suite(args.suite.resolve(), d.engine_url, None, args.files, args.keyword, out / "engine")
        print(f"running the suite through the gateway (output in {out / 'gateway'})", file=sys.stderr)
        gateway = run_suite(args.suite.resolve(), d.gateway_url, TOKEN, args.files, args.keyword, out / "gateway")
    print(table(direct, gateway))


if __name__ == "__main__":
    main()
