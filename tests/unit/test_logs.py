"""JSON log lines and the job fields on aioq's log records."""

from __future__ import annotations

import json
import logging

from aioq.logs import JOB_FIELDS, JsonFormatter, job_fields


def record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("aioq.worker")
    made = logger.makeRecord("aioq.worker", logging.INFO, __file__, 1, "job %s done", ("j1",), None)
    made.__dict__.update(extra)
    return made


def test_a_record_is_one_json_line_with_the_job_fields() -> None:
    fields = job_fields("j1", "send", "emails", 2, "w-1", duration=0.1234567, outcome="retried")
    line = JsonFormatter().format(record(**fields))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed.pop("time").endswith("+00:00")
    assert parsed == {
        "level": "info",
        "logger": "aioq.worker",
        "message": "job j1 done",
        "job_id": "j1",
        "task": "send",
        "queue": "emails",
        "attempt": 2,
        "duration": 0.123457,
        "worker_id": "w-1",
        "outcome": "retried",
    }
    assert set(fields) <= set(JOB_FIELDS)


def test_an_exception_and_static_fields_are_kept() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        made = record()
        made.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter({"service": "billing"}).format(made))
    assert "ValueError: boom" in parsed["exception"]
    assert parsed["service"] == "billing"
    assert "job_id" not in parsed


def test_an_odd_extra_value_does_not_break_the_line() -> None:
    parsed = json.loads(JsonFormatter().format(record(task=object())))
    assert parsed["task"].startswith("<object")
