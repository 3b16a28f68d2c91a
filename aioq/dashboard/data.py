"""Every read and every change the dashboard makes, in one place.

The dashboard's pages, API and live feed call only this module. It builds on the app's
public API (`Aarq.queues`, `Aarq.dead`, `Aarq.job`, pauses, enqueue) and on the broker
seam (`aioq.backend`) for the rest: pages of job records, the workers' heartbeats as they
change, and the delayed jobs; so it works on any backend.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from aioq.backend import Inspection
from aioq.deadletter import DeadEntry
from aioq.errors import JobNotFoundError
from aioq.inspection import EventStream, QueueStats, ScheduleStatus, group_usage, schedules
from aioq.naming import validate_queue
from aioq.wire import DeadLetter, JobMessage, JobRecord, JobState, WorkerInfo

if TYPE_CHECKING:
    from aioq.app import Aarq

__all__ = [
    "DashboardData",
    "DelayedJob",
    "JobDetail",
    "JobPage",
    "WorkerChange",
]

#: Job records one page request reads at most (each read is one direct get).
MAX_SCAN: Final = 2000
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

    async def connect(self) -> None:
        """Connect the app (once)."""
        await self.app.connect()

    # -- queues and workers ----------------------------------------------------------------

    async def queues(self) -> list[QueueStats]:
        """Every queue's counts (see `Aarq.queues`)."""
        return await self.app.queues()

    async def groups(self) -> list[dict[str, Any]]:
        """Every group in the shared limits: running, starts in the window, this app's limit."""
        found = []
        for use in await group_usage(self.app):
            limit = self.app.group_limits.of(use.group)
            found.append({
                **msgspec.structs.asdict(use),
                "max_running": limit.max_running if limit else None,
                "limit": limit.rate_limit if limit else None,
                "interval": limit.rate_interval if limit else None,
            })  # fmt: skip
        return found

    def rate_limit(self, queue: str) -> tuple[int | None, float]:
        """The rate limit this app sets for `queue`: (starts per window or None, window)."""
        options = self.app.queue(queue)
        return options.rate_limit, options.rate_interval

    async def workers_ttl(self) -> float | None:
        """Seconds after its last heartbeat a worker's key expires (the registry's TTL)."""
        return await (await self.app.connect()).workers.ttl()

    async def watch_workers(self) -> AsyncIterator[WorkerChange | None]:
        """Every worker's heartbeat, then each change as it happens.

        Yields None once the current heartbeats have been delivered. Ends at once while no
        worker has ever run (the caller looks again later). An expired heartbeat may produce
        nothing here: the caller judges expiry by heartbeat age.
        """
        broker = await self.app.connect()
        async for change in broker.workers.watch():
            if change is None:
                yield None
                continue
            key, data = change
            if data is None:
                yield WorkerChange(key, None)
                continue
            try:
                yield WorkerChange(key, _worker_decoder.decode(data))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue

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

        Each job has one record, at the position of its last write, so position order is
        the order of last update. A page reads backwards from `cursor` in windows of
        positions that double until the page is full, one read per position, at most
        `MAX_SCAN` per call: the cost of a page depends on
        the page size, the filter's selectivity and how many records were replaced since,
        never on the number of records stored.
        """
        inspection = (await self.app.connect()).inspection
        first, end = await inspection.record_span()
        if end <= first:
            return JobPage([], None)
        top = _cursor(cursor, end)
        wanted = _Filter(queue, status, task)
        found: list[tuple[int, JobRecord]] = []
        scanned, window = 0, max(limit * 2, 16)
        while top > first and len(found) < limit and scanned < MAX_SCAN:
            window = min(window, MAX_SCAN - scanned)
            bottom = max(first, top - window)
            batch, read = await _scan(inspection, bottom, top, wanted)
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
        stored = await broker.jobs.get(handle.queue, job_id)
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
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[DeadEntry]:
        """Dead letters, oldest first per queue, of one queue or all."""
        queues = [validate_queue(queue)] if queue else sorted(await self.app.dead.counts())
        found: list[DeadEntry] = []
        filters = {"task": task, "reason": reason, "error_type": error_type}
        for name in queues:
            found += await self.app.dead.list(
                name, **filters, since=since, until=until, limit=limit - len(found)
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
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> int:
        """Re-enqueue the named dead letters, or those matching the filters; how many.

        Matching ones go oldest first, at most `limit` of them.
        """
        if job_ids:
            return len(await self.app.dead.retry(queue, job_ids))
        filters = {"task": task, "reason": reason, "error_type": error_type}
        window = {"since": since, "until": until, "limit": limit}
        return len(await self.app.dead.retry(queue, None, **filters, **window))

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

    async def schedules(self) -> list[ScheduleStatus]:
        """The app's repeatable jobs with their next tick and the last one fired."""
        return await schedules(self.app)

    async def delayed(self, limit: int = MAX_DELAYED) -> list[DelayedJob]:
        """Delayed jobs still held (the first `limit` held, earliest due first)."""
        inspection = (await self.app.connect()).inspection
        found: list[DelayedJob] = []
        async for entry in inspection.held():
            found.append(DelayedJob(entry.job_id, entry.queue, entry.task, entry.run_at))
            if len(found) >= limit:
                break
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
    inspection: Inspection, bottom: int, top: int, wanted: _Filter
) -> tuple[list[tuple[int, JobRecord]], int]:
    """The matching records stored at positions [bottom, top), oldest first; and reads made."""
    found: list[tuple[int, JobRecord]] = []
    for position, data in await inspection.records_between(bottom, top):
        try:
            record = _record_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if wanted(record):
            found.append((position, record))
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
