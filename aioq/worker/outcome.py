"""An attempt's outcome, written out: the job's record in the results bucket, and its events."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

import msgspec

from aioq.backend import Broker
from aioq.wire import ErrorInfo, Event, EventKind, JobRecord, JobState, encode

__all__ = [
    "RECORD_ROOM",
    "Reporter",
    "ResultEncodingError",
    "ResultTooLargeError",
    "encode_result",
    "error_record",
]

log = logging.getLogger("aioq.worker")

# Progress updates closer together than this are merged, so a tight loop cannot flood NATS.
PROGRESS_INTERVAL_S: Final = 0.25
# A job's "running" record is stored only once it has run this long: most jobs finish
# sooner, and their final record then costs the server one write instead of two.
RUNNING_RECORD_DELAY_S: Final = 0.05
# Compare-and-set writes tried before a guarded record gives up to a newer attempt.
_SWAP_TRIES: Final = 3
_record_decoder: Final = msgspec.json.Decoder(JobRecord)

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
        self.clock = broker.clock
        self.worker_id = worker_id
        self.keep_result = keep_result
        # Running records on their way out, awaited before a newer record of the same job.
        self._pending: dict[str, asyncio.Future[None]] = {}
        # Jobs running here whose running record was stored (only tracked with keep_result=0).
        self._stored: set[str] = set()
        # Revisions that the next record of a job must replace (see `guard`).
        self._guards: dict[str, int] = {}

    async def report(
        self,
        record: JobRecord,
        *,
        duration: float | None = None,
        delay: float | None = None,
    ) -> bool:
        """Store `record` as the job's state and publish the matching event.

        False (nothing stored or published) if the job was guarded and a newer attempt's
        record took its place.
        """
        pending = self._pending.get(record.id)
        if pending is not None:
            await pending
        record.worker = self.worker_id
        final = record.state not in (JobState.RUNNING, JobState.RETRYING)
        revision = self._guards.pop(record.id, None)
        if self.keep_result or not final:
            data = encode(record)
            if revision is None:
                await self.broker.records.put(record.id, data)
            elif not await self._swap(record, data, revision):
                return False
        elif record.attempts > 1 or record.id in self._stored:
            # Nothing is kept: only forget the record an earlier state of this job left.
            await self.broker.records.delete(record.id)
        self._stored.discard(record.id)
        await self._announce(
            _STATE_EVENT[record.state], record, duration=duration, error=record.error, delay=delay
        )
        return True

    async def guard(self, job_id: str, attempt: int, seq: int) -> int | None:
        """Prepare the outcome of an attempt whose lease lapsed: another may have run the job.

        Returns the attempt number of a newer attempt (of the job's message at stream
        sequence `seq`) that recorded the job, or None: then
        the next record of the job is stored only if the record read here is still the
        latest (compare-and-set on its revision), so it can never overwrite a newer attempt.
        """
        pending = self._pending.get(job_id)
        if pending is not None:
            await pending
        found = await self.broker.records.get_revision(job_id)
        if found is not None:
            stored = _record_decoder.decode(found[0])
            if stored.attempts > attempt and stored.seq in (None, seq):
                return stored.attempts
        self._guards[job_id] = found[1] if found is not None else 0
        return None

    def drop_guard(self, job_id: str) -> None:
        """Forget the guard of an attempt that ended without a record."""
        self._guards.pop(job_id, None)

    async def _swap(self, record: JobRecord, data: bytes, revision: int) -> bool:
        """Store `record` over revision `revision`; False if a newer attempt's record is there."""
        records = self.broker.records
        for _ in range(_SWAP_TRIES):
            if await records.swap(record.id, data, revision):
                return True
            found = await records.get_revision(record.id)
            if found is None:
                revision = 0
                continue
            if _record_decoder.decode(found[0]).attempts > record.attempts:
                return False
            revision = found[1]  # a write of this attempt came between: replace it
        return False

    async def started(
        self, record: JobRecord, *, lease_lapses: float, store_now: bool = False
    ) -> asyncio.Handle:
        """Publish the started event; store the running record after `RUNNING_RECORD_DELAY_S`.

        Cancel the returned handle when the attempt ends: a job that ends sooner never has
        its running record stored. With `store_now`, the record is stored (and confirmed)
        before this returns, so that the start is known even if the worker dies at once.
        A delayed write that comes after `lease_lapses` seconds (the loop was blocked, or
        the process frozen) is dropped: another attempt may have recorded the job since.
        """
        record.worker = self.worker_id
        loop = asyncio.get_running_loop()
        if store_now:
            if not self.keep_result:
                self._stored.add(record.id)
            await self.broker.records.store(record.id, encode(record))
            await self._announce(EventKind.STARTED, record)
            return loop.call_soon(_nothing)
        await self._announce(EventKind.STARTED, record)
        deadline = loop.time() + lease_lapses
        return loop.call_later(RUNNING_RECORD_DELAY_S, self._store_later, record, deadline)

    def _store_later(self, record: JobRecord, deadline: float) -> None:
        if asyncio.get_running_loop().time() > deadline:
            return
        # Encoded now, not when the attempt started: progress the task reported in between
        # is in the record, and this write must not roll it back.
        job_id = record.id
        if not self.keep_result:
            self._stored.add(job_id)
        task = asyncio.ensure_future(self.broker.records.put(job_id, encode(record)))
        self._pending[job_id] = task
        task.add_done_callback(lambda _: self._pending.pop(job_id, None))

    async def progress(self, record: JobRecord, fraction: float, message: str | None) -> None:
        """Store a running job's progress and publish a progress event."""
        record.progress, record.progress_message = fraction, message
        if not self.keep_result:
            self._stored.add(record.id)
        await self.broker.records.put(record.id, encode(record))
        await self._announce(EventKind.PROGRESS, record, progress=fraction, message=message)

    async def _announce(self, kind: EventKind, record: JobRecord, **details: Any) -> None:
        """Publish the `kind` event of `record`'s job, with `details` (Event fields)."""
        event = Event(
            kind=kind,
            id=record.id,
            queue=record.queue or "",
            at=self.clock.time(),
            task=record.task,
            attempt=record.attempts or None,
            worker=self.worker_id,
            **details,
        )
        await self.broker.events.publish(event.queue, kind.value, encode(event))


def _nothing() -> None:
    pass


#: Bytes of a job record besides its result (ids, times, progress message): a result may
#: take the server's max_payload less this.
RECORD_ROOM = 8192


class ResultEncodingError(TypeError):
    """A task returned a value that cannot be stored as JSON."""


class ResultTooLargeError(ResultEncodingError):
    """A task returned a value too large for its job record."""


def encode_result(value: Any, limit: int | None = None) -> msgspec.Raw:
    """A task's return value as raw JSON, at most `limit` bytes.

    Raises:
        ResultEncodingError: It cannot be encoded, or (`ResultTooLargeError`) it is too large.
    """
    try:
        data = encode(value)
    except (TypeError, msgspec.EncodeError) as e:
        raise ResultEncodingError(
            f"the task's return value cannot be stored: {e}; return JSON-encodable values "
            "(str, numbers, bool, None, lists, dicts, dataclasses, msgspec Structs)"
        ) from None
    if limit is not None and len(data) > limit:
        raise ResultTooLargeError(
            f"the task's result is {len(data)} bytes, above the {limit} bytes a job record "
            "holds (the server's max_payload less room for the record's other fields): store "
            "it elsewhere (a file, an object store) and return a reference to it"
        )
    return msgspec.Raw(data)


def error_record(
    record: JobRecord, state: JobState, error: ErrorInfo, now: float | None = None
) -> JobRecord:
    """`record` moved to a final failure `state` at `now` (default: the time)."""
    record.state, record.error = state, error
    record.finished_at = time.time() if now is None else now
    return record
