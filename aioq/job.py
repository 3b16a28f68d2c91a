"""`Job`: the handle `enqueue` returns, to follow, await and abort a job."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from aioq.errors import (
    JobAbortedError,
    JobExpiredError,
    JobFailedError,
    JobNotFoundError,
    ResultTimeoutError,
)
from aioq.wire import (
    TERMINAL_STATES,
    Event,
    EventKind,
    JobMessage,
    JobRecord,
    JobState,
    WaitingJob,
    encode,
)

if TYPE_CHECKING:
    from aioq.backend import Broker
    from aioq.ports import BrokerAccess

__all__ = ["Job"]

R = TypeVar("R")

_record_decoder = msgspec.json.Decoder(JobRecord)
_waiting_decoder = msgspec.json.Decoder(WaitingJob)
_message_decoder = msgspec.json.Decoder(JobMessage)
_REWATCH_PAUSE_S = 0.2
# How long `abort` waits for the worker running a job to confirm its cancellation.
_ABORT_CONFIRM_S = 2.0
# ... and for a job not known to run (it may have just started).
_ABORT_CONFIRM_SHORT_S = 0.3
# A job found nowhere is looked for once more after this long before it is called unknown.
_LOOK_AGAIN_S = 0.05


class Job(Generic[R]):
    """A job that was enqueued.

    Attributes:
        id: The job id (also its JetStream dedupe id).
        task: The task name.
        queue: The queue it was published to.
        duplicate: True if a job with this id was already enqueued within the dedupe window,
            in which case this enqueue stored nothing.
    """

    __slots__ = ("_app", "_result_type", "duplicate", "id", "queue", "task")

    def __init__(
        self,
        id: str,
        task: str,
        queue: str,
        *,
        duplicate: bool = False,
        app: BrokerAccess | None = None,
        result_type: Any = Any,
    ) -> None:
        self.id = id
        self.task = task
        self.queue = queue
        self.duplicate = duplicate
        self._app = app
        self._result_type = result_type

    def __repr__(self) -> str:
        dup = ", duplicate=True" if self.duplicate else ""
        return f"Job(id={self.id!r}, task={self.task!r}, queue={self.queue!r}{dup})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and (self.id, self.queue) == (other.id, other.queue)

    def __hash__(self) -> int:
        return hash((self.id, self.queue))

    async def _broker(self) -> Broker:
        if self._app is None:
            raise RuntimeError("this Job handle has no app: get one from enqueue or app.job()")
        return await self._app.connect()

    async def status(self) -> JobRecord:
        """The job's state now: queued, deferred, running, retrying or an outcome.

        The record carries attempts, worker, start/finish times, progress and the last error.

        Raises:
            JobNotFoundError: The job is not queued, held or on record (never enqueued, or its
                record is older than the app's `keep_result`).
        """
        broker = await self._broker()
        raw = await broker.records.get(self.id)
        record = _record_decoder.decode(raw) if raw else None
        if record is not None and record.state in TERMINAL_STATES | {JobState.RUNNING}:
            return record
        stored = await broker.jobs.get(self.queue, self.id)
        if stored is not None:  # queued; or between attempts, or requeued by a stopping worker
            queued = JobRecord(id=self.id, state=JobState.QUEUED, task=self.task, queue=self.queue)
            return _with_call(record or queued, stored.data)
        if await broker.held.find(self.id, self.queue):
            return JobRecord(id=self.id, state=JobState.DEFERRED, task=self.task, queue=self.queue)
        if record is not None:
            return record
        # Released from waiting, a job's record is removed a moment before it is queued.
        waiting = await waiting_record(broker, self.id)
        if waiting is not None:
            return waiting
        # The job can move on during these lookups: finish after its record was read (the
        # final record is written before it leaves its queue), or go from held to its queue;
        # and the "queued" record of a job enqueued a moment ago is stored without waiting.
        # Look once more, a moment later, before calling it unknown.
        await asyncio.sleep(_LOOK_AGAIN_S)
        raw = await broker.records.get(self.id)
        if raw:
            return _record_decoder.decode(raw)
        if await broker.jobs.find(self.id, self.queue):
            return JobRecord(id=self.id, state=JobState.QUEUED, task=self.task, queue=self.queue)
        raise JobNotFoundError(f"job {self.id} on queue {self.queue!r} is not known", self.id)

    async def result(self, timeout: float | None = 10.0) -> R:
        """Wait for the job's outcome and return the task's return value.

        Waits on a watch of the job's record, not by polling.

        Raises:
            JobFailedError: The job failed for good; carries the remote error and traceback.
            JobAbortedError: The job was aborted.
            JobExpiredError: The job expired before it started.
            ResultTimeoutError: No outcome within `timeout` seconds.
        """
        broker = await self._broker()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        async for raw in broker.records.watch(self.id):
                            if raw is None:
                                continue
                            record = _record_decoder.decode(raw)
                            if record.state in TERMINAL_STATES:
                                return self._outcome(record)
                    except TimeoutError:
                        # A request of the watch went unanswered (the bucket's stream electing
                        # a leader, say); the deadline above ends the wait, this does not.
                        await asyncio.sleep(_REWATCH_PAUSE_S)
                        continue
                    break
        except TimeoutError:
            raise ResultTimeoutError(
                f"job {self.id} had no outcome within {timeout}s", self.id
            ) from None
        raise ResultTimeoutError(f"job {self.id}: its record could not be watched", self.id)

    def _outcome(self, record: JobRecord) -> R:
        if record.state is JobState.SUCCEEDED:
            try:
                return msgspec.convert(record.result, type=self._result_type)  # type: ignore[no-any-return]
            except msgspec.ValidationError:
                return record.result  # type: ignore[no-any-return]
        error = record.error
        if record.state is JobState.ABORTED:
            raise JobAbortedError(f"job {self.id} was aborted", self.id)
        if record.state is JobState.EXPIRED:
            detail = f": {error.message}" if error else ""
            raise JobExpiredError(f"job {self.id} expired before it started{detail}", self.id)
        kind, message, tb = (error.type, error.message, error.traceback) if error else ("", "", "")
        raise JobFailedError(f"job {self.id} failed: {kind}: {message}", self.id, kind, message, tb)

    async def abort(self) -> bool:
        """Stop the job for good: remove it if it waits, cancel it where it runs.

        A running task sees `asyncio.CancelledError`; the job ends as aborted and is never
        retried. Returns False if the job had already finished (or is unknown).
        """
        broker = await self._broker()
        raw = await broker.records.get(self.id)
        record = _record_decoder.decode(raw) if raw else None
        if record is not None and record.state in TERMINAL_STATES:
            return False
        await broker.events.announce_abort(self.id)
        removed = await broker.jobs.remove(self.queue, self.id)
        removed |= await broker.held.remove(self.queue, self.id)
        removed |= await _remove_waiting(broker, self.id)
        running = record is not None and record.state is JobState.RUNNING
        # A worker that runs the job cancels it and records the abort itself.
        wait = _ABORT_CONFIRM_S if running else _ABORT_CONFIRM_SHORT_S
        if await self._confirmed_aborted(broker, wait):
            return True
        if removed:
            await self._record_aborted(broker, record)
        return removed

    async def _confirmed_aborted(self, broker: Broker, wait: float) -> bool:
        try:
            async with asyncio.timeout(wait):
                async for raw in broker.records.watch(self.id):
                    if raw and _record_decoder.decode(raw).state is JobState.ABORTED:
                        return True
        except TimeoutError:
            pass
        return False

    async def _record_aborted(self, broker: Broker, record: JobRecord | None) -> None:
        assert self._app is not None
        now = self._app.clock.time()
        if record is None:
            record = JobRecord(id=self.id, state=JobState.ABORTED, task=self.task, queue=self.queue)
        record.state, record.finished_at = JobState.ABORTED, now
        # Acknowledged: a status() right after abort() must find the record.
        await broker.records.store(self.id, encode(record))
        event = Event(kind=EventKind.ABORTED, id=self.id, queue=self.queue, at=now, task=self.task)
        await broker.events.publish(self.queue, EventKind.ABORTED.value, encode(event))
        await broker.flush()


async def _remove_waiting(broker: Broker, job_id: str) -> bool:
    """Remove a job waiting for its dependencies; its own dependents then see it aborted."""
    found = await broker.waiting.get(job_id)
    return found is not None and await broker.waiting.delete(job_id, found[1])


async def waiting_record(broker: Broker, job_id: str) -> JobRecord | None:
    """The record of job `job_id` if it waits for its dependencies, from the waiting store."""
    found = await broker.waiting.get(job_id)
    if found is None:
        return None
    entry = _waiting_decoder.decode(found[0])
    return JobRecord(
        id=entry.id,
        state=JobState.WAITING,
        task=entry.task,
        queue=entry.queue,
        enqueued_at=entry.created_at,
        depends_on=entry.depends_on,
    )


def _with_call(record: JobRecord, data: bytes) -> JobRecord:
    """`record`, with the priority, group and unique key its job's message asks for.

    A worker writes them into the record when the job starts; until then, the message has them.
    """
    try:
        job = _message_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return record  # not a job aioq can run: its worker dead-letters it
    return msgspec.structs.replace(
        record,
        priority=record.priority if record.priority is not None else job.priority,
        group=record.group or job.group,
        unique_key=record.unique_key or job.unique_key,
        depends_on=record.depends_on or job.depends_on,
    )
