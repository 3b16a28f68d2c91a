"""Every read and every change the dashboard makes, in one place.

The dashboard's pages, API and live feed call only this module. It builds on the app's
public API (`Aarq.queues`, `Aarq.dead`, `Aarq.job`, pauses, enqueue) and reads JetStream
directly only for what that API has no call for yet: pages of job records, the workers
bucket's watch, and the due times of delayed jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE

from aioq._nats import NatsBroker
from aioq._nats.scheduling import RUN_AT_HEADER, parse_run_at
from aioq.deadletter import DeadEntry
from aioq.errors import BrokerError, JobNotFoundError
from aioq.inspection import EventStream, QueueStats
from aioq.naming import validate_queue
from aioq.wire import DeadLetter, JobMessage, JobRecord, JobState, WorkerInfo

if TYPE_CHECKING:
    from aioq.app import Aarq

__all__ = [
    "DashboardData",
    "DelayedJob",
    "JobDetail",
    "JobPage",
    "ScheduleView",
    "WorkerChange",
]

#: Job records one page request reads at most (each read is one direct get).
MAX_SCAN: Final = 2000
#: Records read at once while paging.
_READ_AT_ONCE: Final = 64
# The server's error code for a message that is not there (it may come as a 500).
_NO_MESSAGE_FOUND: Final = 10057
#: Delayed jobs the schedules page lists at most.
MAX_DELAYED: Final = 100

_record_decoder: Final = msgspec.json.Decoder(JobRecord)
_worker_decoder: Final = msgspec.json.Decoder(WorkerInfo)
_job_decoder: Final = msgspec.json.Decoder(JobMessage)


@dataclass(slots=True)
class JobPage:
    """One page of job records, most recently updated first.

    Attributes:
        jobs: The records.
        cursor: Pass it back for the next (older) page; None at the end.
        scanned: Records read to fill this page.
        partial: The scan budget (`MAX_SCAN`) ran out before the page filled: more matching
            records may follow the cursor.
    """

    jobs: list[JobRecord]
    cursor: str | None
    scanned: int = 0
    partial: bool = False


@dataclass(slots=True)
class JobDetail:
    """A job's record with what else is known about it: its message and its dead letter."""

    record: JobRecord
    message: JobMessage | None = None
    dead: DeadLetter | None = None


@dataclass(slots=True)
class ScheduleView:
    """A repeatable job with its next tick and the last one fired."""

    name: str
    task: str
    queue: str
    schedule: str
    next_fire: float | None
    last_fire: float | None


@dataclass(slots=True)
class DelayedJob:
    """A delayed job still held until its due time."""

    id: str
    queue: str
    task: str | None
    due_at: float | None


@dataclass(slots=True)
class WorkerChange:
    """One change of the workers bucket: a heartbeat (`info`) or a removal (`info` None)."""

    key: str
    info: WorkerInfo | None
    at: float = field(default_factory=time.time)


class DashboardData:
    """The dashboard's access to one app's queues, workers, jobs and dead letters."""

    def __init__(self, app: Aarq) -> None:
        self.app = app

    async def _js(self) -> JetStreamContext:
        broker = await self.app.connect()
        if not isinstance(broker, NatsBroker):
            raise BrokerError(f"the dashboard needs the NATS broker, not {type(broker).__name__}")
        return broker.js

    async def connect(self) -> None:
        """Connect the app (once)."""
        await self.app.connect()

    # -- queues and workers ----------------------------------------------------------------

    async def queues(self) -> list[QueueStats]:
        """Every queue's counts (see `Aarq.queues`)."""
        return await self.app.queues()

    def rate_limit(self, queue: str) -> tuple[int | None, float]:
        """The rate limit this app sets for `queue`: (starts per window or None, window)."""
        options = self.app.queue(queue)
        return options.rate_limit, options.rate_interval

    async def workers_ttl(self) -> float | None:
        """Seconds after its last heartbeat a worker's key expires (the bucket's TTL)."""
        js = await self._js()
        try:
            info = await js.stream_info(f"KV_{self.app.names.workers_bucket}")
        except NotFoundError:
            return None
        return info.config.max_age or None

    async def watch_workers(self) -> AsyncIterator[WorkerChange | None]:
        """Every worker's heartbeat, then each change as it happens.

        Yields None once the current heartbeats have been delivered. Raises
        `BucketNotFoundError` while no worker has ever run (the caller retries later).
        An expired key produces nothing here: the caller judges expiry by heartbeat age.
        """
        js = await self._js()
        kv = await js.key_value(self.app.names.workers_bucket)
        watcher = await kv.watchall()
        try:
            while True:
                entry = await watcher.updates(timeout=None)  # type: ignore[no-untyped-call]
                if entry is None:
                    yield None
                    continue
                if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                    yield WorkerChange(entry.key, None)
                    continue
                try:
                    yield WorkerChange(entry.key, _worker_decoder.decode(entry.value))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def events(self) -> EventStream[Aarq]:
        """Lifecycle events of every queue: ``async with data.events() as stream:``."""
        return EventStream(self.app)

    # -- jobs ------------------------------------------------------------------------------

    async def jobs(
        self,
        *,
        queue: str | None = None,
        status: str | None = None,
        task: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """A page of job records, most recently updated first, optionally filtered.

        Records live in the results bucket, one key per job (history 1), so the stream's
        sequence order is the order of last update. A page reads backwards from `cursor` in
        windows of sequence numbers that double until the page is full, one direct get per
        sequence (64 at a time), at most `MAX_SCAN` per call: the cost of a page depends on
        the page size, the filter's selectivity and how many records were replaced since,
        never on the number of records stored.
        """
        js = await self._js()
        stream = f"KV_{self.app.names.results_bucket}"
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            return JobPage([], None)
        first = info.state.first_seq or 1
        top = _cursor(cursor, info.state.last_seq + 1)
        wanted = _Filter(queue, status, task)
        found: list[tuple[int, JobRecord]] = []
        scanned, window = 0, max(limit * 2, 16)
        while top > first and len(found) < limit and scanned < MAX_SCAN:
            window = min(window, MAX_SCAN - scanned)
            bottom = max(first, top - window)
            batch, read = await _scan(js, stream, bottom, top, wanted)
            scanned += read
            found.extend(reversed(batch))
            top, window = bottom, window * 2
        if len(found) >= limit:
            found = found[:limit]
            return JobPage([r for _, r in found], str(found[-1][0]), scanned)
        more = top > first
        return JobPage([r for _, r in found], str(top) if more else None, scanned, more)

    async def job(self, job_id: str) -> JobDetail:
        """A job's record, message (while it is stored) and dead letter (if it has one).

        Raises:
            JobNotFoundError: No job of that id is queued, held or on record.
        """
        handle = await self.app.job(job_id)
        record = await handle.status()
        broker = await self.app.connect()
        message: JobMessage | None = None
        if isinstance(broker, NatsBroker):
            stored = await broker.store.get_queued(handle.queue, job_id)
            if stored is not None:
                message = _job_message(stored.data)
        dead: DeadLetter | None = None
        if record.state in (JobState.FAILED, JobState.EXPIRED):
            with contextlib.suppress(JobNotFoundError):
                dead = (await self.app.dead.get(handle.queue, job_id)).letter
                message = message or _job_message(dead.payload)
        return JobDetail(record, message, dead)

    async def abort(self, job_id: str) -> bool:
        """Abort a job (see `Job.abort`); False if it had finished already."""
        return await (await self.app.job(job_id)).abort()

    async def enqueue(self, task: str, args: list[Any], kwargs: dict[str, Any]) -> str:
        """Enqueue registered task `task`; returns the job id."""
        job = await self.app.enqueue(task, *args, **kwargs)
        return job.id

    def task_names(self) -> list[str]:
        """The app's registered tasks, for the enqueue form."""
        return sorted(self.app.tasks)

    # -- dead letters ----------------------------------------------------------------------

    async def dead(
        self,
        queue: str | None = None,
        *,
        task: str | None = None,
        reason: str | None = None,
        error_type: str | None = None,
        limit: int = 100,
    ) -> list[DeadEntry]:
        """Dead letters, oldest first per queue, of one queue or all."""
        queues = [validate_queue(queue)] if queue else sorted(await self.app.dead.counts())
        found: list[DeadEntry] = []
        for name in queues:
            found += await self.app.dead.list(
                name, task=task, reason=reason, error_type=error_type, limit=limit - len(found)
            )
            if len(found) >= limit:
                break
        return found

    async def retry_dead(
        self,
        queue: str,
        job_ids: list[str] | None = None,
        *,
        task: str | None = None,
        reason: str | None = None,
        error_type: str | None = None,
    ) -> int:
        """Re-enqueue the named dead letters, or all that match the filters; returns how many."""
        if job_ids:
            return len(await self.app.dead.retry(queue, job_ids))
        filters = {"task": task, "reason": reason, "error_type": error_type}
        return len(await self.app.dead.retry(queue, **filters))

    async def purge_dead(self, queue: str) -> int:
        """Delete every dead letter of `queue`; returns how many there were."""
        return await self.app.dead.purge(queue)

    # -- pauses and schedules --------------------------------------------------------------

    async def pause(self, queue: str, until: datetime | None) -> datetime | None:
        """Pause `queue` until `until` (None: until resumed)."""
        return await self.app.pause_queue(queue, until)

    async def resume(self, queue: str) -> None:
        """End the pause of `queue`."""
        await self.app.resume_queue(queue)

    async def schedules(self) -> list[ScheduleView]:
        """The app's repeatable jobs with their next tick and the last one fired."""
        broker = await self.app.connect()
        now = time.time()
        views: list[ScheduleView] = []
        for rep in self.app.repeatables.values():
            fires = rep.next_fires(1, now)
            views.append(
                ScheduleView(
                    name=rep.name,
                    task=rep.task.name,
                    queue=rep.queue,
                    schedule=rep.schedule.describe(),
                    next_fire=fires[0].timestamp() if fires else None,
                    last_fire=await broker.scheduling.last_tick(rep.name),
                )
            )
        return views

    async def delayed(self, limit: int = MAX_DELAYED) -> list[DelayedJob]:
        """Delayed jobs still held (at most `limit`, earliest due first).

        The held subjects are listed in one request (one subject per held job), then the
        due time of the first `limit` is read, one direct get each.
        """
        js = await self._js()
        names = self.app.names
        try:
            info = await js.stream_info(names.jobs_stream, subjects_filter=names.sched_subject())
        except NotFoundError:
            return []
        subjects = list(info.state.subjects or {})[:limit]
        reading = asyncio.Semaphore(32)

        async def read(subject: str) -> DelayedJob | None:
            _, _, queue, job_id = subject.split(".", 3)
            async with reading:
                try:
                    msg = await js.get_msg(names.jobs_stream, subject=subject)
                except NotFoundError:
                    return None  # released meanwhile
            message = _job_message(msg.data or b"")
            due = parse_run_at((msg.headers or {}).get(RUN_AT_HEADER))
            return DelayedJob(job_id, queue, message.task if message else None, due)

        found = [d for d in await asyncio.gather(*(read(s) for s in subjects)) if d]
        found.sort(key=lambda d: d.due_at or 0.0)
        return found


class _Filter:
    def __init__(self, queue: str | None, status: str | None, task: str | None) -> None:
        self.queue, self.status, self.task = queue or None, status or None, task or None

    def __call__(self, record: JobRecord) -> bool:
        return (
            (self.queue is None or record.queue == self.queue)
            and (self.status is None or record.state == self.status)
            and (self.task is None or record.task == self.task)
        )


async def _scan(
    js: JetStreamContext, stream: str, bottom: int, top: int, wanted: _Filter
) -> tuple[list[tuple[int, JobRecord]], int]:
    """The matching records stored at sequences [bottom, top), oldest first; and reads made.

    Every sequence is asked for (`_READ_AT_ONCE` at a time): a sequence whose record was
    replaced or deleted answers "not found" at once.
    """
    found: list[tuple[int, JobRecord]] = []
    direct = True

    async def read(seq: int) -> tuple[int, bytes] | None:
        nonlocal direct
        try:
            msg = await js.get_msg(stream, seq=seq, direct=direct)
        except NoRespondersError:
            direct = False  # a bucket created without direct gets: ask the stream leader
            return await read(seq)
        except NotFoundError:
            return None
        except APIError as e:
            if e.err_code == _NO_MESSAGE_FOUND:
                return None
            raise
        return seq, msg.data or b""

    for first in range(bottom, top, _READ_AT_ONCE):
        chunk = range(first, min(first + _READ_AT_ONCE, top))
        for got in await asyncio.gather(*(read(seq) for seq in chunk)):
            if got is None or not got[1]:
                continue  # replaced, expired or deleted
            try:
                record = _record_decoder.decode(got[1])
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if wanted(record):
                found.append((got[0], record))
    return found, top - bottom


def _cursor(text: str | None, default: int) -> int:
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"invalid cursor {text!r}: pass back the cursor of a page") from None
    if value < 1:
        raise ValueError(f"invalid cursor {text!r}: pass back the cursor of a page")
    return min(value, default)


def _job_message(data: bytes) -> JobMessage | None:
    try:
        return _job_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


# Exported for the live module's retry of a missing bucket.
WorkersBucketMissing: Final = (BucketNotFoundError, NotFoundError)
