"""Delayed jobs, repeatable ticks, shared rate limits and queue pauses, in memory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from aioq.errors import BrokerError
from aioq.testing.memory._stream import Consumer, JobsStream, Message
from aioq.transport import HeldJob, OutgoingJob

__all__ = ["MemoryHeldJob", "MemoryHeldJobs", "MemoryScheduling"]

# A held message gets a dedupe id of its own, as on JetStream (see `aioq._nats.scheduling`).
_HELD_ID_PREFIX: Final = "held:"
# Held messages a scheduler takes at once.
_BATCH: Final = 256
# An open-ended pause: the latest time nats-server accepts, as `paused_until` reports it.
_FOREVER: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


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
            message.queue, message.job_id, message.data, message.job_id, message.headers
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


class MemoryScheduling:
    """The scheduler's, the rate limiter's and the pause commands' side of the broker."""

    def __init__(self, jobs: JobsStream) -> None:
        self.jobs = jobs
        self.clock = jobs.clock
        self.ticks: dict[str, bytes] = {}
        self.limits: dict[str, tuple[bytes, int]] = {}
        self._revision = 0

    # -- delayed jobs ----------------------------------------------------------------------

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

    async def held_jobs(self, queue: str, now: float) -> tuple[int, int]:
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

    async def open_held(self) -> MemoryHeldJobs:
        """A puller on the schedulers' shared consumer."""
        return MemoryHeldJobs(self.jobs)

    # -- repeatable ticks and rate limits --------------------------------------------------------

    async def last_tick(self, name: str) -> float | None:
        """The latest tick recorded for repeatable `name`."""
        data = self.ticks.get(name)
        if data is None:
            return None
        value = json.loads(data)["tick"]
        return float(value) if isinstance(value, int | float) else None

    async def record_tick(self, name: str, tick: float) -> None:
        """Record `tick` as fired, unless a later one is recorded."""
        recorded = await self.last_tick(name)
        if recorded is None or recorded < tick:
            record = {"tick": tick, "fired_at": self.clock.time()}
            self.ticks[name] = json.dumps(record).encode()

    async def read_limit(self, queue: str) -> tuple[bytes | None, int]:
        """The shared rate-limit state of `queue` and its revision (0: none yet)."""
        data, revision = self.limits.get(queue, (None, 0))
        return data, revision

    async def write_limit(self, queue: str, data: bytes, revision: int) -> bool:
        """Compare-and-set the shared rate-limit state of `queue`."""
        _, current = self.limits.get(queue, (None, 0))
        if current != revision:
            return False
        self._revision += 1
        self.limits[queue] = (data, self._revision)
        return True

    # -- pause -------------------------------------------------------------------------------

    def _consumer(self, queue: str) -> Consumer:
        consumer = self.jobs.queues.get(queue)
        if consumer is None or not consumer.created:
            raise BrokerError(
                f"queue {queue!r} has no consumer yet: start a worker on it once "
                "(or check the queue name)"
            )
        return consumer

    async def pause_queue(self, queue: str, until: datetime | None) -> None:
        """Deliver no job of `queue` until `until` (broker clock) or `resume_queue`."""
        # No wake-up for an open-ended pause: a FakeClock that auto-advances would jump to it.
        self._consumer(queue).pause((until or _FOREVER).timestamp(), wake=until is not None)
        await asyncio.sleep(0)

    async def resume_queue(self, queue: str) -> None:
        """End the pause of `queue` at once."""
        self._consumer(queue).resume()
        await asyncio.sleep(0)

    async def paused_until(self, queue: str) -> datetime | None:
        """When the pause of `queue` ends, or None if it is not paused."""
        consumer = self.jobs.queues.get(queue)
        if consumer is None or not consumer.paused():
            return None
        assert consumer.paused_until is not None
        return datetime.fromtimestamp(consumer.paused_until, UTC)

    async def delete_consumer(self, queue: str) -> bool:
        """Forget the queue's consumer settings and pause (its jobs stay); False if it had none."""
        consumer = self.jobs.queues.get(queue)
        if consumer is None or not consumer.created:
            return False
        consumer.created = False
        consumer.resume()
        return True
