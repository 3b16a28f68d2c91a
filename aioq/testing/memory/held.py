"""`MemoryHeld`: delayed jobs held in memory until their due time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from aioq.backend.held import HeldJob
from aioq.backend.jobs import OutgoingJob
from aioq.priority import priority_of
from aioq.testing.memory._stream import JobsStream, Message

__all__ = ["MemoryHeld", "MemoryHeldJob", "MemoryHeldJobs"]

# A held message gets a dedupe id of its own, as on JetStream (see `aioq._nats.held`).
_HELD_ID_PREFIX: Final = "held:"
# Held messages a scheduler takes at once.
_BATCH: Final = 256


class MemoryHeldJob:
    """A held message in a scheduler's hands."""

    __slots__ = (
        "_attempt",
        "_jobs",
        "_message",
        "data",
        "job_id",
        "queue",
        "run_at",
        "run_at_error",
        "seq",
    )

    def __init__(self, jobs: JobsStream, message: Message) -> None:
        self._jobs = jobs
        self._message = message
        self._attempt = message.deliveries
        self.queue = message.queue
        self.job_id = message.job_id
        self.data = message.data
        self.seq = message.seq
        self.run_at = message.run_at
        # Held only through `hold`, whose due time the enqueue validated: never invalid here.
        self.run_at_error: str | None = None

    async def postpone(self, delay: float) -> None:
        """Hand it back, to be delivered again in `delay` seconds on the broker clock."""
        self._jobs.held.nak(self._message, self._attempt, max(delay, 0.001))

    async def release(self) -> bool:
        """Publish the job on its queue (deduplicated by its id), then drop the held message."""
        message = self._message
        duplicate = self._jobs.publish(
            message.queue,
            message.job_id,
            message.data,
            message.job_id,
            message.headers,
            priority_of(message.data),
        )
        self._jobs.held.remove(message)
        return duplicate

    async def hand_back(self) -> None:
        """Hand it back for immediate redelivery."""
        self._jobs.held.nak(self._message, self._attempt, None)

    async def discard(self) -> None:
        """Drop it from the hold without moving it to its queue."""
        self._jobs.held.remove(self._message)


class MemoryHeldJobs:
    """A scheduler's puller on the held jobs."""

    def __init__(self, jobs: JobsStream) -> None:
        self._jobs = jobs

    async def fetch(self, timeout: float) -> list[HeldJob]:
        """Wait up to `timeout` real seconds for held jobs that are new or due again."""
        taken = await self._jobs.held.fetch(_BATCH, timeout)
        return [MemoryHeldJob(self._jobs, message) for message in taken]

    async def close(self) -> None:
        """Nothing is buffered: every message taken was returned."""


class MemoryHeld:
    """Holds delayed jobs for the schedulers; finds, counts and removes them."""

    def __init__(self, jobs: JobsStream) -> None:
        self.jobs = jobs

    async def hold(
        self,
        queue: str,
        data: bytes,
        job_id: str,
        run_at: float,
        headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Hold a delayed job until `run_at`; True if the id was held already."""
        return self.jobs.hold(queue, job_id, data, _HELD_ID_PREFIX + job_id, run_at, headers)

    async def hold_many(
        self, jobs: Sequence[tuple[OutgoingJob, float]]
    ) -> list[bool | BaseException]:
        """Hold many jobs; per job, its duplicate flag."""
        return [
            await self.hold(job.queue, job.data, job.job_id, run_at, job.headers)
            for job, run_at in jobs
        ]

    async def counts(self, queue: str, now: float) -> tuple[int, int]:
        """Delayed jobs of `queue` still held: ``(due by now, not yet due)``."""
        due = later = 0
        for message in self.jobs.held.messages.values():
            if message.queue != queue:
                continue
            if message.run_at is None or message.run_at <= now:
                due += 1
            else:
                later += 1
        return due, later

    async def open(self) -> MemoryHeldJobs:
        """A puller on the schedulers' shared consumer."""
        return MemoryHeldJobs(self.jobs)

    async def find(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue of a delayed job still held for later, or None."""
        return self.jobs.find(job_id, queue, held=True)

    async def remove(self, queue: str, job_id: str) -> bool:
        """Delete a delayed job that is still held for later."""
        return self.jobs.remove(job_id, queue, held=True)
