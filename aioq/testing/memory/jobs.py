"""`MemoryJobs`: jobs on their queues in the in-memory stream, and the workers' pullers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

from aioq.backend.dead import StoredMessage
from aioq.backend.jobs import Delivery, OutgoingJob
from aioq.errors import PayloadTooLargeError
from aioq.options import QueueOptions
from aioq.priority import DEFAULT_PRIORITY, priority_of
from aioq.testing.memory._stream import Consumer, JobsStream, Message
from aioq.testing.memory.level_watch import MemoryLevelWatch

__all__ = ["MemoryDelivery", "MemoryJobs", "MemorySource"]


class MemoryDelivery:
    """A job handed to a worker; settling it changes the broker's state at once."""

    __slots__ = (
        "_consumer",
        "_message",
        "attempt",
        "data",
        "delivered",
        "renewed",
        "seq",
        "stored_at",
    )

    def __init__(self, consumer: Consumer, message: Message) -> None:
        self._consumer = consumer
        self._message = message
        self.data = message.data
        self.delivered = self.attempt = message.deliveries
        self.seq = message.seq
        self.stored_at = message.stored_at
        self.renewed = time.monotonic()

    @property
    def msg_id(self) -> str | None:
        """The dedupe id it was published with."""
        return self._message.msg_id

    @property
    def headers(self) -> Mapping[str, str] | None:
        """The headers it was published with."""
        return self._message.headers

    async def ack(self) -> None:
        """Done: remove the job."""
        self._consumer.remove(self._message)

    async def nak(self, delay: float | None = None) -> None:
        """Deliver again, after `delay` seconds on the broker clock if given."""
        self._consumer.nak(self._message, self.delivered, delay)

    async def in_progress(self) -> None:
        """Reset the lease (``ack_wait``, real time)."""
        self.renewed = time.monotonic()
        self._consumer.extend(self._message, self.delivered)

    async def term(self) -> None:
        """Remove the job without success."""
        self._consumer.remove(self._message)


class MemorySource:
    """A worker's puller on one queue's consumer."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    async def fetch_now(self, count: int) -> list[Delivery]:
        """Up to `count` jobs that are available now."""
        await asyncio.sleep(0)  # a round trip on a real broker: let other tasks run
        return self._wrap(self._consumer.take(count))

    async def fetch_next(self, timeout: float) -> list[Delivery]:
        """Wait up to `timeout` real seconds for one job."""
        return self._wrap(await self._consumer.fetch(1, timeout))

    def _wrap(self, messages: list[Message]) -> list[Delivery]:
        return [MemoryDelivery(self._consumer, m) for m in messages]

    async def close(self) -> None:
        """Nothing is buffered: every job taken was returned."""


class MemoryJobs:
    """Publishes, pulls, counts, finds and removes the queues' jobs."""

    def __init__(self, stream: JobsStream, max_payload: int) -> None:
        self.stream = stream
        self.max_payload = max_payload

    def _check_size(self, data: bytes) -> None:
        if len(data) > self.max_payload:
            raise PayloadTooLargeError(
                f"job is {len(data)} bytes, above the broker's max_payload of "
                f"{self.max_payload} bytes: pass a reference (a URL or object key) instead of "
                "the data itself"
            )

    async def publish(
        self,
        queue: str,
        data: bytes,
        job_id: str,
        task: str | None = None,
        headers: Mapping[str, str] | None = None,
        priority: int = DEFAULT_PRIORITY,
    ) -> bool:
        """Store one job, deduplicated by its id."""
        self._check_size(data)
        return self.stream.publish(queue, job_id, data, job_id, headers, priority)

    async def publish_many(self, jobs: Sequence[OutgoingJob]) -> list[bool | BaseException]:
        """Store many jobs; per job, its duplicate flag."""
        for job in jobs:
            self._check_size(job.data)
        return [
            self.stream.publish(
                job.queue, job.job_id, job.data, job.job_id, job.headers, job.priority
            )
            for job in jobs
        ]

    async def republish(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Put a job back on its queue (at its message's level) with a fresh dedupe id."""
        self.stream.publish(queue, job_id, data, msg_id, None, priority_of(data))

    async def open_source(
        self, queue: str, options: QueueOptions, level: int | None = None
    ) -> MemorySource:
        """Create or update the queue's (or its `level`'s) consumer and return a puller on it."""
        stream = self.stream
        consumer = stream.queue(queue) if level is None else stream.level(queue, level)
        consumer.created = True
        consumer.ack_wait = options.ack_wait
        consumer.max_ack_pending = options.max_ack_pending
        consumer.changed.fire()
        return MemorySource(consumer)

    async def levels(self, queue: str) -> dict[int, int]:
        """Jobs stored on each priority level's own subject of `queue`."""
        return {
            level: len(consumer.messages)
            for (name, level), consumer in self.stream.levels.items()
            if name == queue and consumer.messages
        }

    async def watch_levels(self, queue: str, heard: Callable[[int], None]) -> MemoryLevelWatch:
        """Hear jobs stored on the watched levels of `queue`."""
        return MemoryLevelWatch(self.stream, queue, heard)

    async def delete_consumer(self, queue: str) -> bool:
        """Forget the queue's consumer settings and pause (its jobs stay); False if it had none."""
        for (name, _), level in self.stream.levels.items():
            if name == queue:
                level.created = False
                level.resume()
        consumer = self.stream.queues.get(queue)
        if consumer is None or not consumer.created:
            return False
        consumer.created = False
        consumer.resume()
        return True

    async def backlog(self, queue: str) -> int:
        """Jobs of `queue` waiting, being run, or waiting out a retry delay (not held ones)."""
        return sum(len(consumer.messages) for consumer in self.stream.consumers_of(queue))

    async def find(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue that still holds job `job_id`, or None."""
        return self.stream.find(job_id, queue)

    async def get(self, queue: str, job_id: str) -> StoredMessage | None:
        """The stored message of a job still in its queue, or None."""
        for m in self.stream.matching(job_id, queue, held=False):
            return StoredMessage(m.seq, f"{queue}.{job_id}", m.data, m.stored_at)
        return None

    async def remove(self, queue: str, job_id: str) -> bool:
        """Delete a job that is still in its queue (waiting, running or between attempts)."""
        return self.stream.remove(job_id, queue)
