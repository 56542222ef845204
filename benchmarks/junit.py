"""Reading the JUnit XML report of a peer's test suite run (benchmarks/llamacpp_suite.py, a1111_suite.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

Outcomes = dict[str, tuple[str, str]]  # test id -> (passed | failed | skipped, first line of the failure)


def parse(report: Path) -> Outcomes:
    """Each test case's outcome, by `classname::name`."""
    outcomes: Outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            outcomes[test] = ("failed", message[0][:160] if message else "")
        elif case.find("skipped") is not None:
            outcomes[test] = ("skipped", "")
        else:
            outcomes[test] = ("passed", "")
    return outcomes
