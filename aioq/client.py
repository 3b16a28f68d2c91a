"""The producer side: publishing prepared jobs and finding existing ones, as `Job` handles.

`Aarq.publish`, `Aarq.enqueue_many` and `Aarq.job` delegate here; these functions need only
the narrow `ClientApp` of an app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgspec

from aioq.backend import Broker
from aioq.dependencies import register
from aioq.errors import JobNotFoundError, PartialEnqueueError
from aioq.job import Job, waiting_record
from aioq.ports import BrokerAccess
from aioq.publishing import publish_many as publish_all
from aioq.publishing import publish_one
from aioq.task import PreparedJob
from aioq.unique import claim, unclaim
from aioq.wire import Event, EventKind, JobRecord, UniqueHolder, encode

__all__ = ["ClientApp", "find_job", "publish_many", "publish_prepared"]


class _TypedTask(Protocol):
    @property
    def result_type(self) -> Any:
        """The type the task's result decodes to."""
        ...


class ClientApp(BrokerAccess, Protocol):
    """What publishing and lookups need of an app: its broker and its tasks' result types."""

    @property
    def tasks(self) -> Mapping[str, _TypedTask]:
        """Registered tasks by name."""
        ...


async def publish_prepared(app: ClientApp, job: PreparedJob) -> Job[Any]:
    """Publish one prepared job and wait for the broker's acknowledgement."""
    broker = await app.connect()
    if job.unique is not None:
        holder = await claim(broker, job)
        if holder is not None:
            return _held_by(app, job, holder)
    at = broker.clock.time()
    try:
        duplicate = await (register if job.depends else publish_one)(broker, job)
    except BaseException:
        await unclaim(broker, job)
        raise
    if not duplicate:
        await _announce(broker, job, at)
    return _handle(app, job, duplicate)


async def publish_many(app: ClientApp, jobs: Iterable[PreparedJob]) -> list[Job[Any]]:
    """Publish many jobs and await their acknowledgements together.

    Raises:
        PartialEnqueueError: If any job was not stored; it lists which.
    """
    prepared = list(jobs)
    if not prepared:
        return []
    broker = await app.connect()
    holders: dict[int, UniqueHolder] = {}
    for i, job in enumerate(prepared):
        holder = await claim(broker, job) if job.unique is not None else None
        if holder is not None:
            holders[i] = holder
    fresh = [job for i, job in enumerate(prepared) if i not in holders and not job.depends]
    at = broker.clock.time()
    outcomes = iter(await publish_all(broker, fresh))
    done: list[Job[Any]] = []
    failed: list[tuple[PreparedJob, BaseException]] = []
    stored: list[PreparedJob] = []
    for i, job in enumerate(prepared):
        if i in holders:
            done.append(_held_by(app, job, holders[i]))
            continue
        outcome = await _register(broker, job) if job.depends else next(outcomes)
        if isinstance(outcome, BaseException):
            await unclaim(broker, job)
            failed.append((job, outcome))
        else:
            if not outcome:
                stored.append(job)
            done.append(_handle(app, job, outcome))
    await broker.events.publish_many(_enqueued(job, at) for job in stored)
    if failed:
        raise PartialEnqueueError(
            f"{len(failed)} of {len(prepared)} jobs were not enqueued "
            f"(first: {failed[0][0].job_id}: {failed[0][1]!r}); re-enqueueing them all is "
            "safe, the stored ones are deduplicated by id",
            enqueued=done,
            failed=failed,
        )
    return done


async def find_job(app: ClientApp, job_id: str, queue: str | None = None) -> Job[Any]:
    """A handle on an existing job, from its id (and queue, if known).

    Raises:
        JobNotFoundError: No waiting, queued, held or recorded job has this id.
    """
    broker = await app.connect()
    raw = await broker.records.get(job_id)
    record = msgspec.json.decode(raw, type=JobRecord) if raw else None
    # Released from waiting, a job has no record for a moment: the waiting store has it until
    # it is queued. A job that ends between these looks has its final record by then.
    record = record or await waiting_record(broker, job_id)
    found = queue or (record.queue if record else None)
    found = found or await broker.jobs.find(job_id) or await broker.held.find(job_id)
    if found is None and (raw := await broker.records.get(job_id)):
        record = msgspec.json.decode(raw, type=JobRecord)
        found = record.queue or None
    if found is None:
        raise JobNotFoundError(f"no job {job_id!r} is queued, held or on record", job_id)
    task = record.task if record and record.task else ""
    return Job(job_id, task, found, app=app, result_type=_result_type(app, task))


def _result_type(app: ClientApp, task: str) -> Any:
    found = app.tasks.get(task)
    return found.result_type if found is not None else Any


def _handle(app: ClientApp, job: PreparedJob, duplicate: bool) -> Job[Any]:
    return Job(
        job.job_id,
        job.task,
        job.queue,
        duplicate=duplicate,
        app=app,
        result_type=_result_type(app, job.task),
    )


async def _register(broker: Broker, job: PreparedJob) -> bool | BaseException:
    try:
        return await register(broker, job)
    except Exception as e:
        return e


def _held_by(app: ClientApp, job: PreparedJob, holder: UniqueHolder) -> Job[Any]:
    """A handle on the job that holds `job`'s unique key."""
    task = holder.task or job.task
    return Job(
        holder.id,
        task,
        holder.queue or job.queue,
        duplicate=True,
        app=app,
        result_type=_result_type(app, task),
    )


async def _announce(broker: Broker, job: PreparedJob, at: float) -> None:
    """Publish the job's ``enqueued`` event, timed `at` (taken before the job was published).

    The event goes out after the job, so a worker's ``started`` can arrive first; its time
    still orders it before the worker's events.
    """
    await broker.events.publish(*_enqueued(job, at))


def _enqueued(job: PreparedJob, at: float) -> tuple[str, str, bytes]:
    """The job's ``enqueued`` event, timed `at`: its queue, kind and encoded event."""
    event = Event(kind=EventKind.ENQUEUED, id=job.job_id, queue=job.queue, at=at, task=job.task)
    return job.queue, EventKind.ENQUEUED.value, encode(event)
