"""Jobs that wait for others (``depends_on``): held by the broker until their dependencies end.

A waiting job is stored in the waiting bucket, its record says ``waiting``. Whoever settles it
(the producer right after storing it, then the schedulers: woken by the lifecycle events of
jobs ending, and sweeping every scan interval) reads its dependencies' records: once all
succeeded, the job is published to its queue (deduplicated by its id, so two schedulers
settling it at once store it once); once one failed for good, it is dead-lettered with reason
``dependency_failed`` (or published anyway, if it asked so). Nothing is kept in a worker's
memory: a restart of any process loses no waiting job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, Final

import msgspec

from aioq.backend import Broker, EventListener
from aioq.errors import JobNotFoundError
from aioq.priority import priority_of
from aioq.task import PreparedJob
from aioq.wire import (
    TERMINAL_STATES,
    DeadLetter,
    DeadReason,
    ErrorInfo,
    Event,
    EventKind,
    JobRecord,
    JobState,
    WaitingJob,
    decode_job,
    encode,
)

__all__ = ["register", "release_waiting", "settle"]

log = logging.getLogger("aioq.dependencies")

# Waiting jobs settled per sweep at most.
SWEEP_LIMIT: Final = 1000
# A dependency with neither record nor stored message is taken as still being enqueued
# (its "queued" record is written without waiting) for this long after the wait began.
GONE_GRACE_S: Final = 30.0
_PENDING, _SUCCEEDED, _FAILED = "pending", "succeeded", "failed"
_ENDED: Final = frozenset(
    {EventKind.SUCCEEDED, EventKind.FAILED, EventKind.EXPIRED, EventKind.ABORTED}
)
_record_decoder: Final = msgspec.json.Decoder(JobRecord)
_waiting_decoder: Final = msgspec.json.Decoder(WaitingJob)
_event_decoder: Final = msgspec.json.Decoder(Event)


async def register(broker: Broker, job: PreparedJob) -> bool:
    """Store `job` as waiting for its dependencies; True if a job of its id waits already.

    Raises:
        JobNotFoundError: A dependency is not queued, held, waiting or on record.
    """
    spec = job.depends
    assert spec is not None
    now = broker.clock.time()
    for dep in spec.ids:
        if (await _state(broker, dep, None))[0] is None:
            raise JobNotFoundError(
                f"depends_on: no job {dep!r} is queued, held, waiting or on record (a job "
                "that ended longer ago than keep_result is forgotten)",
                dep,
            )
    entry = WaitingJob(
        id=job.job_id,
        queue=job.queue,
        task=job.task,
        payload=job.data,
        depends_on=list(spec.ids),
        created_at=now,
        on_failure=spec.on_failure,
        pass_results=spec.pass_results,
    )
    if not await broker.waiting.create(job.job_id, encode(entry)):
        return True
    record = JobRecord(
        id=job.job_id,
        state=JobState.WAITING,
        task=job.task,
        queue=job.queue,
        enqueued_at=now,
        depends_on=list(spec.ids),
    )
    await broker.records.store(job.job_id, encode(record))
    try:
        await settle(broker, job.job_id)
    except Exception as e:  # a producer may lack the rights: the schedulers settle it
        log.debug("job %s: left waiting for the schedulers: %s", job.job_id, e)
    return False


async def settle(broker: Broker, job_id: str) -> bool:
    """Queue or dead-letter waiting job `job_id` if its dependencies ended; True if so."""
    found = await broker.waiting.get(job_id)
    if found is None:
        return False
    data, revision = found
    entry = _waiting_decoder.decode(data)
    results: list[Any] = []
    failure: tuple[str, str] | None = None
    for dep in entry.depends_on:
        state, detail = await _state(broker, dep, entry.created_at)
        if state == _PENDING:
            return False
        if state == _SUCCEEDED:
            results.append(detail)
        else:
            results.append(None)
            failure = failure or (dep, str(detail))
    if failure is not None and entry.on_failure == "dead":
        await _dead(broker, entry, *failure)
    else:
        await _queue(broker, entry, results)
    await broker.waiting.delete(job_id, revision)
    return True


async def _state(broker: Broker, job_id: str, since: float | None) -> tuple[str | None, Any]:
    """A dependency's state (pending, succeeded, failed; None: unknown) and result or reason."""
    found = await _recorded(broker, job_id)
    if found is not None:
        return found
    stored = await broker.waiting.get(job_id) or await broker.jobs.find(job_id)
    if stored or await broker.held.find(job_id):
        return _PENDING, None
    # It may have ended between the two looks: its final record comes before it leaves.
    found = await _recorded(broker, job_id)
    if found is not None:
        return found
    if since is None:
        return None, None
    if broker.clock.time() - since < GONE_GRACE_S:
        return _PENDING, None
    return _FAILED, "gone (no record: ended longer ago than keep_result, or never stored)"


async def _recorded(broker: Broker, job_id: str) -> tuple[str, Any] | None:
    raw = await broker.records.get(job_id)
    if raw is None:
        return None
    record = _record_decoder.decode(raw)
    if record.state is JobState.SUCCEEDED:
        return _SUCCEEDED, record.result
    if record.state in TERMINAL_STATES:
        return _FAILED, record.state.value
    return _PENDING, None


async def _queue(broker: Broker, entry: WaitingJob, results: list[Any]) -> None:
    payload = entry.payload
    if entry.pass_results is not None:
        message = decode_job(payload)
        passed = results[0] if entry.pass_results == "first" else results
        message.args = [passed, *message.args]
        payload = encode(message)
    found = await broker.records.get_revision(entry.id)
    if found is not None and _record_decoder.decode(found[0]).state is JobState.WAITING:
        # Its queued record (with the stream sequence) is written only where none is.
        await broker.records.delete(entry.id)
    await broker.jobs.publish(
        entry.queue, payload, entry.id, entry.task, priority=priority_of(payload)
    )


async def _dead(broker: Broker, entry: WaitingJob, dep: str, why: str) -> None:
    now = broker.clock.time()
    error = ErrorInfo("DependencyFailed", f"dependency {dep} {why}")
    dead = DeadLetter(
        id=entry.id,
        queue=entry.queue,
        reason=DeadReason.DEPENDENCY_FAILED,
        attempts=0,
        dead_at=now,
        payload=entry.payload,
        task=entry.task,
        error=error,
        enqueued_at=entry.created_at,
    )
    await broker.dead.publish(entry.queue, entry.id, encode(dead), f"{entry.id}:dependency")
    record = JobRecord(
        id=entry.id,
        state=JobState.FAILED,
        task=entry.task,
        queue=entry.queue,
        enqueued_at=entry.created_at,
        finished_at=now,
        error=error,
        depends_on=entry.depends_on,
    )
    await broker.records.store(entry.id, encode(record))
    event = Event(
        kind=EventKind.FAILED, id=entry.id, queue=entry.queue, at=now, task=entry.task, error=error
    )
    await broker.events.publish(entry.queue, EventKind.FAILED.value, encode(event))
    log.warning("job %s queue=%s dead-lettered: dependency_failed: %s", entry.id, entry.queue, why)


async def release_waiting(broker: Broker, interval: float) -> None:
    """Settle waiting jobs until cancelled: every `interval`, and whenever a job ends.

    Lifecycle events are listened to only while jobs wait, so an app that uses no
    dependencies receives none. The interval is real time, not the broker's clock: a test's
    fake clock that jumps to its next wake-up must not stop at every sweep.
    """
    releaser = _Releaser(broker)
    try:
        while True:
            await releaser.listen(await releaser.sweep())
            await _first(releaser.ended.wait(), asyncio.sleep(interval))
            releaser.ended.clear()
    finally:
        await releaser.listen(False)


class _Releaser:
    """The state of `release_waiting`: the event listener while jobs wait, and its warnings."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.ended = asyncio.Event()
        self.listener: EventListener | None = None
        self.hearing: asyncio.Task[None] | None = None
        # The last problem logged; the same one is not logged again at every sweep.
        self.problem = ""

    async def sweep(self) -> bool:
        """Settle every waiting job once; whether some still wait."""
        try:
            ids = await self.broker.waiting.ids(SWEEP_LIMIT)
        except Exception as e:
            self._warn(f"cannot list the waiting jobs: {e}")
            return False
        left = False
        for job_id in ids:
            try:
                left |= not await settle(self.broker, job_id)
            except Exception as e:
                left = True
                self._warn(f"waiting job {job_id}: cannot settle it now: {e}")
        return left

    async def listen(self, wanted: bool) -> None:
        """Listen to lifecycle events if `wanted`, else stop listening."""
        if wanted and self.listener is None:
            try:
                self.listener = await self.broker.events.listen()
            except Exception as e:
                self._warn(f"cannot listen to job events, settling every sweep only: {e}")
                return
            self.hearing = asyncio.create_task(_hear(self.listener, self.ended))
        elif not wanted and self.listener is not None:
            if self.hearing is not None:
                self.hearing.cancel()
            with contextlib.suppress(Exception):
                await self.listener.close()
            self.listener = self.hearing = None

    def _warn(self, problem: str) -> None:
        if problem != self.problem:
            self.problem = problem
            log.warning("%s", problem)


async def _hear(listener: EventListener, ended: asyncio.Event) -> None:
    async for raw in listener.messages():
        with contextlib.suppress(msgspec.DecodeError):
            if _event_decoder.decode(raw).kind in _ENDED:
                ended.set()


async def _first(*waits: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
