"""Log records as JSON lines, and the job fields aioq puts on its records.

aioq's job log lines carry `JOB_FIELDS` as attributes of the record (``logging``'s `extra`):
``record.job_id``, ``record.task``, ... A handler of your own can read them; `JsonFormatter`
writes them as one JSON object per line for log shippers (``aioq worker --log-format json``).
Lines that a task logs itself get the fields of the job it runs: `JsonFormatter` adds them,
and the `JobFields` filter puts them on the records for any other handler.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import msgspec

__all__ = [
    "CURRENT_JOB",
    "JOB_FIELDS",
    "JobFields",
    "JsonFormatter",
    "configure_logging",
    "job_fields",
]

#: Record attributes aioq sets on the log lines about a job (or a worker: only `worker_id`).
JOB_FIELDS: Final = ("job_id", "task", "queue", "attempt", "duration", "worker_id", "outcome")
_encoder: Final = msgspec.json.Encoder(enc_hook=repr)


class RunningJob(Protocol):
    """What the log fields need of a running job (its `aioq.Context`)."""

    job_id: str
    task: str
    queue: str
    attempt: int
    worker_id: str


#: The job whose task runs in the current asyncio task (or its thread), set by the worker.
CURRENT_JOB: ContextVar[RunningJob | None] = ContextVar("aioq_current_job", default=None)


def _current_fields() -> dict[str, Any]:
    job = CURRENT_JOB.get()
    if job is None:
        return {}
    return job_fields(job.job_id, job.task, job.queue, job.attempt, job.worker_id)


class JobFields(logging.Filter):
    """Puts the running job's fields on records that lack them (a task's own log lines).

    Add it to a handler: ``handler.addFilter(JobFields())``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields; never drops a record."""
        if getattr(record, "job_id", None) is None:
            record.__dict__.update(_current_fields())
        return True


def job_fields(
    job_id: str,
    task: str | None,
    queue: str,
    attempt: int,
    worker_id: str,
    *,
    duration: float | None = None,
    outcome: str | None = None,
) -> dict[str, Any]:
    """The `extra` of a log line about one attempt at a job."""
    fields: dict[str, Any] = {
        "job_id": job_id,
        "task": task,
        "queue": queue,
        "attempt": attempt,
        "worker_id": worker_id,
    }
    if duration is not None:
        fields["duration"] = round(duration, 6)
    if outcome is not None:
        fields["outcome"] = outcome
    return fields


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, the job fields.

    ``time`` is ISO 8601 in UTC; the job fields appear when the record has them; a logged
    exception comes as ``exception`` (its traceback, as text). `static` fields (a service
    name, say) are added to every line.
    """

    def __init__(self, static: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        if fields.get("job_id") is None:
            fields = {**_current_fields(), **fields}
        for name in JOB_FIELDS:
            found = fields.get(name)
            if found is not None:
                line[name] = found
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        line.update(self.static)
        return _encoder.encode(line).decode()


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send log lines to stderr at `level`, as text or ``json``; nats-py's stay at warning.

    What ``aioq worker --log-level LEVEL --log-format FORMAT`` does.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("nats").setLevel(max(logging.WARNING, root.level))
