"""Publishing prepared jobs: to their queue, or held until their due time for the scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from aioq.backend import Broker
from aioq.errors import ConfigError, PayloadTooLargeError
from aioq.observing import producer_spans
from aioq.task import PreparedJob

__all__ = ["pause_end", "publish_many", "publish_one"]


async def publish_one(broker: Broker, job: PreparedJob) -> bool:
    """Store one job (held if it has a due time); True if its id was stored already."""
    spans = producer_spans((job,))
    if spans is None:
        return await _publish_one(broker, job)
    try:
        duplicate = await _publish_one(broker, spans.jobs[0])
    except BaseException as e:
        spans.end([e])
        raise
    spans.end([duplicate])
    return duplicate


async def _publish_one(broker: Broker, job: PreparedJob) -> bool:
    if job.run_at is not None:
        _check_size(broker, job)
        return await broker.held.hold(job.queue, job.data, job.job_id, job.run_at, job.headers)
    return await broker.jobs.publish(
        job.queue, job.data, job.job_id, job.task, job.headers, job.priority
    )


async def publish_many(broker: Broker, jobs: Sequence[PreparedJob]) -> list[bool | BaseException]:
    """Store many jobs, due ones and held ones, without awaiting each in turn.

    Returns, per job and in order, its duplicate flag or the error that kept it out.
    """
    spans = producer_spans(jobs)
    if spans is None:
        return await _publish_many(broker, jobs)
    try:
        outcomes = await _publish_many(broker, spans.jobs)
    except BaseException as e:
        spans.end([e] * len(jobs))
        raise
    spans.end(outcomes)
    return outcomes


async def _publish_many(broker: Broker, jobs: Sequence[PreparedJob]) -> list[bool | BaseException]:
    held = [(i, job) for i, job in enumerate(jobs) if job.run_at is not None]
    if not held:
        return await broker.jobs.publish_many(jobs)
    now = [(i, job) for i, job in enumerate(jobs) if job.run_at is None]
    outcomes: list[bool | BaseException] = [False] * len(jobs)
    for job in jobs:
        _check_size(broker, job)
    if now:
        for (i, _), outcome in zip(
            now, await broker.jobs.publish_many([job for _, job in now]), strict=True
        ):
            outcomes[i] = outcome
    held_outcomes = await broker.held.hold_many(
        [(job, job.run_at) for _, job in held if job.run_at is not None]
    )
    for (i, _), outcome in zip(held, held_outcomes, strict=True):
        outcomes[i] = outcome
    return outcomes


def _check_size(broker: Broker, job: PreparedJob) -> None:
    limit = broker.max_payload
    if len(job.data) > limit:
        raise PayloadTooLargeError(
            f"job is {len(job.data)} bytes, above the server's max_payload of {limit} bytes: "
            "pass a reference (a URL or object key) instead of the data itself"
        )


def pause_end(until: datetime | timedelta | None, now: datetime | None = None) -> datetime | None:
    """The end of a queue pause as an aware UTC datetime (None: until resumed)."""
    if until is None:
        return None
    now = now or datetime.now(UTC)
    if isinstance(until, timedelta):
        end = now + until
    elif isinstance(until, datetime):
        if until.tzinfo is None or until.utcoffset() is None:
            raise ConfigError(f"until must be timezone-aware, got the naive {until.isoformat()}")
        end = until.astimezone(UTC)
    else:
        raise ConfigError(f"until must be a datetime or a timedelta, got {until!r}")
    if end <= now:
        raise ConfigError(f"until must be in the future, got {end.isoformat()}")
    return end
