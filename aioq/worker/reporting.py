"""What a worker tells the world about a job: its record in the results bucket and its events."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import msgspec

from aioq.transport import Broker
from aioq.wire import ErrorInfo, Event, EventKind, JobRecord, JobState, encode

__all__ = ["Reporter", "ResultEncodingError", "encode_result", "error_record"]

log = logging.getLogger("aioq.worker")

# Progress updates closer together than this are merged, so a tight loop cannot flood NATS.
PROGRESS_INTERVAL_S: Final = 0.25
# A job's "running" record is stored only once it has run this long: most jobs finish
# sooner, and their final record then costs the server one write instead of two.
RUNNING_RECORD_DELAY_S: Final = 0.05

_STATE_EVENT: Final = {
    JobState.RUNNING: EventKind.STARTED,
    JobState.RETRYING: EventKind.RETRYING,
    JobState.SUCCEEDED: EventKind.SUCCEEDED,
    JobState.FAILED: EventKind.FAILED,
    JobState.EXPIRED: EventKind.EXPIRED,
    JobState.ABORTED: EventKind.ABORTED,
}


class Reporter:
    """Writes job records and publishes events, without waiting for the server.

    Records and events of one job leave in the order they are written, and before the job's
    ack or term, so whoever sees a job leave its queue finds its final record.
    """

    def __init__(self, broker: Broker, worker_id: str, keep_result: float) -> None:
        self.broker = broker
        self.worker_id = worker_id
        self.keep_result = keep_result
        # Running records on their way out, awaited before a newer record of the same job.
        self._pending: dict[str, asyncio.Future[None]] = {}
        # Jobs running here whose running record was stored (only tracked with keep_result=0).
        self._stored: set[str] = set()

    async def report(
        self,
        record: JobRecord,
        *,
        duration: float | None = None,
        delay: float | None = None,
    ) -> None:
        """Store `record` as the job's state and publish the matching event."""
        pending = self._pending.get(record.id)
        if pending is not None:
            await pending
        record.worker = self.worker_id
        final = record.state not in (JobState.RUNNING, JobState.RETRYING)
        if self.keep_result or not final:
            await self.broker.put_record(record.id, encode(record))
        elif record.attempts > 1 or record.id in self._stored:
            # Nothing is kept: only forget the record an earlier state of this job left.
            await self.broker.delete_record(record.id)
        self._stored.discard(record.id)
        await self._announce(
            _STATE_EVENT[record.state], record, duration=duration, error=record.error, delay=delay
        )

    async def started(self, record: JobRecord) -> asyncio.TimerHandle:
        """Publish the started event; store the running record after `RUNNING_RECORD_DELAY_S`.

        Cancel the returned handle when the attempt ends: a job that ends sooner never has
        its running record stored.
        """
        record.worker = self.worker_id
        await self._announce(EventKind.STARTED, record)
        loop = asyncio.get_running_loop()
        return loop.call_later(RUNNING_RECORD_DELAY_S, self._store_later, record)

    def _store_later(self, record: JobRecord) -> None:
        # Encoded now, not when the attempt started: progress the task reported in between
        # is in the record, and this write must not roll it back.
        job_id = record.id
        if not self.keep_result:
            self._stored.add(job_id)
        task = asyncio.ensure_future(self.broker.put_record(job_id, encode(record)))
        self._pending[job_id] = task
        task.add_done_callback(lambda _: self._pending.pop(job_id, None))

    async def progress(self, record: JobRecord, fraction: float, message: str | None) -> None:
        """Store a running job's progress and publish a progress event."""
        record.progress, record.progress_message = fraction, message
        if not self.keep_result:
            self._stored.add(record.id)
        await self.broker.put_record(record.id, encode(record))
        await self._announce(EventKind.PROGRESS, record, progress=fraction, message=message)

    async def _announce(self, kind: EventKind, record: JobRecord, **details: Any) -> None:
        """Publish the `kind` event of `record`'s job, with `details` (Event fields)."""
        event = Event(
            kind=kind,
            id=record.id,
            queue=record.queue or "",
            at=self.broker.clock.time(),
            task=record.task,
            attempt=record.attempts or None,
            worker=self.worker_id,
            **details,
        )
        await self.broker.publish_event(event.queue, kind.value, encode(event))


class ResultEncodingError(TypeError):
    """A task returned a value that cannot be stored as JSON."""


def encode_result(value: Any) -> msgspec.Raw:
    """A task's return value as raw JSON; raises `ResultEncodingError` if it cannot be."""
    try:
        return msgspec.Raw(encode(value))
    except (TypeError, msgspec.EncodeError) as e:
        raise ResultEncodingError(
            f"the task's return value cannot be stored: {e}; return JSON-encodable values "
            "(str, numbers, bool, None, lists, dicts, dataclasses, msgspec Structs)"
        ) from None


def error_record(
    record: JobRecord, state: JobState, error: ErrorInfo, now: float | None = None
) -> JobRecord:
    """`record` moved to a final failure `state` at `now` (default: the time)."""
    record.state, record.error = state, error
    record.finished_at = time.time() if now is None else now
    return record
