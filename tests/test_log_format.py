"""The log formatters: one JSON object per line with the extra fields, or text with them appended."""

from __future__ import annotations

import json
import logging
import sys

from graycat.logs import JsonFormatter, TextFormatter


def record(**extra: object) -> logging.LogRecord:
    rec = logging.getLogger("graycat.test").makeRecord(
        "graycat.test", logging.WARNING, __file__, 1, "job %s failed", ("j1",), None, extra=extra
    )
    rec.created = 1_800_000_000.25
    rec.msecs = 250.0
    return rec


def test_json_line_carries_the_ids_and_the_message() -> None:
    line = JsonFormatter().format(record(request_id="r1", job_id="j1", status=502))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry == {
        "ts": "2027-01-15T08:00:00.250Z",
        "level": "WARNING",
        "logger": "graycat.test",
        "msg": "job j1 failed",
        "request_id": "r1",
        "job_id": "j1",
        "status": 502,
    }


def test_json_line_keeps_an_exception_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record()
        rec.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(rec))
    assert "ValueError: boom" in entry["exc"]


def test_text_line_appends_the_extra_fields() -> None:
    line = TextFormatter().format(record(request_id="r1"))
    assert line.endswith("WARNING graycat.test: job j1 failed request_id=r1")
