"""`Attempt`: one run of one delivered job, and what describing its outcome needs."""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
import traceback
from dataclasses import dataclass
from typing import Any, Final

from aioq.backend import Delivery
from aioq.context import Context
from aioq.logs import job_fields
from aioq.naming import JOB_ID_PATTERN
from aioq.task import Task
from aioq.wire import DeadLetter, DeadReason, ErrorInfo, JobMessage, JobRecord
from aioq.worker.leases import Lease
from aioq.worker.observe import AttemptSpan
from aioq.worker.outcome import PROGRESS_INTERVAL_S, Reporter

__all__ = [
    "Attempt",
    "Previous",
    "Progress",
    "Stats",
    "dead_letter",
    "error_info",
    "job_id_of",
    "log_outcome",
    "ran_twice",
    "short",
]

log = logging.getLogger("aioq.worker")

# A traceback longer than this keeps its end, where the error is.
_MAX_TRACEBACK_CHARS: Final = 16_000
_VALID_ID: Final = re.compile(JOB_ID_PATTERN)


@dataclass(slots=True)
class Stats:
    """Counters reported in the worker's heartbeat."""

    processed: int = 0
    failed: int = 0
    retried: int = 0


class Previous(enum.Enum):
    """What a redelivered job's record says about its previous delivery."""

    #: It ended with an outcome (a retry, usually): nothing crashed.
    SETTLED = "settled"
    #: It started and left no outcome: its worker died (or lost the lease) while it ran.
    STARTED = "started"
    #: It never started as far as the record tells (the worker died with the job fetched).
    UNKNOWN = "unknown"
    #: A later delivery recorded the job already: this one is stale (it reached a pull of a
    #: worker that was frozen, and its lease ran out before the worker read it).
    SUPERSEDED = "superseded"


@dataclass(slots=True, eq=False)
class Attempt:
    """One attempt at a job: its delivery, decoded job, task, context, record and lease."""

    delivery: Delivery
    job: JobMessage
    task: Task[Any, Any]
    ctx: Context
    #: The job's record, updated with the attempt's outcome.
    record: JobRecord
    lease: Lease
    #: Seconds the attempt may run (the call's timeout, else the task's; None: no limit).
    timeout: float | None
    #: `time.perf_counter()` when the task started.
    started: float = 0.0
    #: The attempt's trace span, when tracing is on.
    span: AttemptSpan | None = None


class Progress:
    """Reports a job's progress at most every `PROGRESS_INTERVAL_S`, keeping the latest value.

    An update that comes too soon is held and sent when the interval ends, so the last value
    a task reports is never lost; `close` drops a held one once the attempt is over.
    """

    def __init__(self, reporter: Reporter, record: JobRecord, lease: Lease) -> None:
        self.reporter = reporter
        self.record = record
        self.lease = lease
        self.sent_at = 0.0
        self.held: tuple[float, str | None] | None = None
        self.flusher: asyncio.Task[None] | None = None

    async def __call__(self, fraction: float, message: str | None) -> None:
        """Report `fraction` (and `message`) now, or when the interval ends."""
        if self.lease.check(time.monotonic()):
            return  # another attempt may own the record now (see Executor._superseded)
        wait = self.sent_at + PROGRESS_INTERVAL_S - time.monotonic()
        if wait <= 0:
            self.sent_at = time.monotonic()
            await self.reporter.progress(self.record, fraction, message)
            return
        self.held = (fraction, message)
        if self.flusher is None:
            self.flusher = asyncio.create_task(self._flush(wait))

    async def _flush(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self.flusher = None
        if self.held is not None and not self.lease.check(time.monotonic()):
            (fraction, message), self.held = self.held, None
            self.sent_at = time.monotonic()
            await self.reporter.progress(self.record, fraction, message)

    def close(self) -> None:
        """Drop a held update: the attempt is over."""
        if self.flusher is not None:
            self.flusher.cancel()
            self.flusher = None


def job_id_of(job: JobMessage | None, delivery: Delivery) -> str:
    """The job's id: its own, else the message id, else one made of its stream sequence."""
    if job is not None and job.id:
        return job.id
    msg_id = delivery.msg_id
    if msg_id and _VALID_ID.match(msg_id):
        return msg_id
    return f"seq-{delivery.seq}"


def error_info(error: BaseException, *, tb: bool = True) -> ErrorInfo:
    """An error as stored in a record: type, message and (the end of) its traceback."""
    text = "".join(traceback.format_exception(error)) if tb else ""
    if len(text) > _MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-_MAX_TRACEBACK_CHARS:]
    return ErrorInfo(type(error).__qualname__, str(error), text)


def short(error: BaseException) -> str:
    """An error in a few words, for a log line."""
    message = str(error)
    if len(message) > 200:
        message = message[:200] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def ran_twice(ctx: Context, newer: int | None) -> None:
    """Log an attempt whose outcome is dropped: a newer attempt recorded the job meanwhile."""
    log.warning(
        "job %s task=%s ran twice: attempt %d ended after its lease lapsed, and %s recorded "
        "the job meanwhile; that record is kept and this attempt's outcome is dropped",
        ctx.job_id,
        ctx.task,
        ctx.attempt,
        f"attempt {newer}" if newer is not None else "a newer attempt",
        extra=job_fields(ctx.job_id, ctx.task, ctx.queue, ctx.attempt, ctx.worker_id),
    )


def log_outcome(level: int, run: Attempt, text: str, outcome: str) -> None:
    """Log how an attempt ended (`text`; `outcome` in a word), with how long it took."""
    if log.isEnabledFor(level):
        ctx = run.ctx
        took = time.perf_counter() - run.started
        log.log(
            level,
            "job %s task=%s queue=%s attempt=%d took=%.3fs %s",
            ctx.job_id,
            ctx.task,
            ctx.queue,
            ctx.attempt,
            took,
            text,
            extra=job_fields(
                ctx.job_id,
                ctx.task,
                ctx.queue,
                ctx.attempt,
                ctx.worker_id,
                duration=took,
                outcome=outcome,
            ),
        )


def dead_letter(
    delivery: Delivery,
    job_id: str,
    queue: str,
    reason: DeadReason,
    job: JobMessage | None,
    error: ErrorInfo,
    moment: float,
    worker_id: str,
) -> DeadLetter:
    """The dead-letter record of `delivery`, dead-lettered at `moment` by `worker_id`."""
    return DeadLetter(
        id=job_id,
        queue=queue,
        reason=reason,
        attempts=delivery.attempt,
        dead_at=moment,
        payload=delivery.data,
        task=job.task if job else None,
        error=error,
        enqueued_at=delivery.stored_at,
        worker=worker_id,
        stream_seq=delivery.seq,
    )
