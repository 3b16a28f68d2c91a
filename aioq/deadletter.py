"""Dead letters: list, inspect, re-enqueue and purge the jobs that will not run again."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from aioq.errors import JobNotFoundError
from aioq.naming import validate_queue
from aioq.wire import DeadLetter, Event, EventKind, JobMessage, JobRecord, JobState, encode

if TYPE_CHECKING:
    from aioq.backend import Broker, StoredMessage
    from aioq.job import Job
    from aioq.ports import DeadLetterApp

__all__ = ["DeadEntry", "DeadLetters"]

_dead_decoder = msgspec.json.Decoder(DeadLetter)


@dataclass(frozen=True, slots=True)
class DeadEntry:
    """A dead letter and its sequence number in the dead-letter stream."""

    seq: int
    letter: DeadLetter


class DeadLetters:
    """The dead letters of an app (``app.dead``)."""

    def __init__(self, app: DeadLetterApp) -> None:
        self.app = app

    async def _broker(self) -> Broker:
        return await self.app.connect()

    async def counts(self) -> dict[str, int]:
        """How many dead letters each queue has."""
        return await (await self._broker()).dead.counts()

    async def list(
        self,
        queue: str,
        *,
        task: str | None = None,
        error_type: str | None = None,
        reason: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[DeadEntry]:
        """Dead letters of `queue`, oldest first, optionally filtered.

        Args:
            queue: The queue.
            task: Only jobs of this task.
            error_type: Only jobs whose last error has this type name (e.g. ``"ValueError"``).
            reason: Only this reason (``failed``, ``expired``, ``bad_payload`` ...).
            since: Only jobs dead-lettered at or after this unix time.
            until: Only jobs dead-lettered before this unix time.
            limit: At most this many.
        """
        broker = await self._broker()
        found: list[DeadEntry] = []
        async for message in broker.dead.list(validate_queue(queue)):
            entry = dead_entry(message)
            if _matches(entry.letter, task, error_type, reason, since, until):
                found.append(entry)
                if limit is not None and len(found) >= limit:
                    break
        return found

    async def get(self, queue: str, job_id: str) -> DeadEntry:
        """The dead letter of job `job_id`; raises `JobNotFoundError` if there is none."""
        message = await (await self._broker()).dead.get(validate_queue(queue), job_id)
        if message is None:
            raise JobNotFoundError(f"no dead letter for job {job_id!r} on queue {queue!r}", job_id)
        return dead_entry(message)

    async def retry(
        self,
        queue: str,
        job_ids: Iterable[str] | None = None,
        **filters: Any,
    ) -> builtins.list[Job[Any]]:
        """Put dead jobs back on their queue: the ones named, or all that match `filters`.

        Each job keeps its id; its record links to the dead letter it came from
        (``retry_of``) and keeps the last error until it runs again. The dead letter is
        removed once the job is queued.

        Raises:
            JobNotFoundError: A named job has no dead letter.
        """
        if job_ids is not None:
            entries = [await self.get(queue, job_id) for job_id in job_ids]
        else:
            entries = await self.list(queue, **filters)
        broker = await self._broker()
        jobs = [await self._requeue(broker, entry) for entry in entries]
        await broker.flush()
        return jobs

    async def _requeue(self, broker: Broker, entry: DeadEntry) -> Job[Any]:
        from aioq.job import Job

        letter = entry.letter
        data = letter.payload
        message: JobMessage | None = None
        try:
            message = msgspec.json.decode(data, type=JobMessage)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass  # not a valid job: it goes back as it was, and fails the same way
        else:
            message.retry_of = entry.seq
            data = encode(message)
        at = self.app.clock.time()  # before the job can run: its event sorts before the worker's
        record = JobRecord(
            id=letter.id,
            state=JobState.QUEUED,
            task=letter.task,
            queue=letter.queue,
            attempts=letter.attempts,
            error=letter.error,
            retry_of=entry.seq,
            priority=message.priority if message else None,
            group=message.group if message else None,
            unique_key=message.unique_key if message else None,
        )
        # The record is stored first: a worker on another connection can run the job as soon
        # as it is queued, and a "queued" record stored after its outcome would replace it.
        await broker.records.store(letter.id, encode(record))
        await broker.jobs.republish(letter.queue, letter.id, data, f"{letter.id}:retry:{entry.seq}")
        event = Event(
            kind=EventKind.ENQUEUED,
            id=letter.id,
            queue=letter.queue,
            at=at,
            task=letter.task,
        )
        await broker.events.publish(letter.queue, EventKind.ENQUEUED.value, encode(event))
        await broker.dead.delete(entry.seq)
        task = letter.task or ""
        result_type = self.app.tasks[task].result_type if task in self.app.tasks else Any
        return Job(letter.id, task, letter.queue, app=self.app, result_type=result_type)

    async def purge(self, queue: str) -> int:
        """Delete every dead letter of `queue`; returns how many there were."""
        return await (await self._broker()).dead.purge(validate_queue(queue))


def dead_entry(message: StoredMessage) -> DeadEntry:
    return DeadEntry(message.seq, _dead_decoder.decode(message.data))


def _matches(
    letter: DeadLetter,
    task: str | None,
    error_type: str | None,
    reason: str | None,
    since: float | None,
    until: float | None,
) -> bool:
    if task is not None and letter.task != task:
        return False
    if error_type is not None and (letter.error is None or letter.error.type != error_type):
        return False
    if reason is not None and letter.reason != reason:
        return False
    if since is not None and letter.dead_at < since:
        return False
    return until is None or letter.dead_at < until
