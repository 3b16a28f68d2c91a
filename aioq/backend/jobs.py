"""Jobs on their queues: publishing, pulling, settling, and finding a queued job by its id."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from aioq.backend.dead import StoredMessage
from aioq.errors import BrokerError
from aioq.options import QueueOptions
from aioq.priority import DEFAULT_PRIORITY

__all__ = ["ConsumerGoneError", "Delivery", "JobSource", "Jobs", "LevelWatch", "OutgoingJob"]


class ConsumerGoneError(BrokerError):
    """A queue's consumer disappeared while a worker pulled from it; it can be re-created."""


class Delivery(Protocol):
    """A job message handed to a worker, and the ways to settle it."""

    data: bytes
    #: 1 on the first delivery: the broker's count (`delivered`) less the deliveries that a
    #: group limit put back, which the worker subtracts once it has read the job's record.
    attempt: int
    #: Deliveries counted by the broker, this one included.
    delivered: int
    #: Broker sequence of the message, unique per enqueue.
    seq: int
    #: When the broker stored the message (unix seconds, broker clock).
    stored_at: float
    #: When its lease was last known fresh (`time.monotonic`): its arrival, or the last
    #: `in_progress`. A job that waits before it starts is already using up its lease.
    renewed: float

    @property
    def msg_id(self) -> str | None:
        """The dedupe id the publisher set, if any."""
        ...

    @property
    def headers(self) -> Mapping[str, str] | None:
        """The message's headers (a trace context among them), if any."""
        ...

    async def ack(self) -> None:
        """Done: remove the job."""

    async def nak(self, delay: float | None = None) -> None:
        """Deliver again, after `delay` seconds if given."""

    async def in_progress(self) -> None:
        """Extend the lease of a running job."""

    async def term(self) -> None:
        """Remove the job without success; it is not delivered again."""


class JobSource(Protocol):
    """The jobs of one queue: batches of what is ready, or a wait for the next one."""

    async def fetch_now(self, count: int) -> Sequence[Delivery]:
        """Up to `count` jobs that are available now, without waiting for new ones."""
        ...

    async def fetch_next(self, timeout: float) -> Sequence[Delivery]:
        """Wait up to `timeout` seconds for one job; empty if none came."""
        ...

    async def close(self) -> None:
        """Stop pulling and hand back anything received but not yet returned."""


class OutgoingJob(Protocol):
    """What `Jobs.publish_many` needs of each job."""

    @property
    def queue(self) -> str:
        """Queue to publish to."""
        ...

    @property
    def data(self) -> bytes:
        """Encoded job message."""
        ...

    @property
    def task(self) -> str:
        """Task name, for the job's record."""
        ...

    @property
    def job_id(self) -> str:
        """Dedupe id."""
        ...

    @property
    def headers(self) -> Mapping[str, str] | None:
        """Headers to publish with (a trace context), if any."""
        ...

    @property
    def priority(self) -> int:
        """Priority level: which of the queue's subjects the job goes to."""
        ...


class LevelWatch(Protocol):
    """Hears the first jobs stored on priority levels of a queue that no puller pulls yet."""

    async def watch(self, levels: Collection[int]) -> None:
        """Listen on exactly these levels from now on."""

    async def close(self) -> None:
        """Stop listening."""


class Jobs(Protocol):
    """The queues' jobs: store, pull, count, find and remove them."""

    async def publish(
        self,
        queue: str,
        data: bytes,
        job_id: str,
        task: str | None = None,
        headers: Mapping[str, str] | None = None,
        priority: int = DEFAULT_PRIORITY,
    ) -> bool:
        """Store one job of `task` (with `headers`, at `priority`); True if it was a duplicate."""
        ...

    async def publish_many(self, jobs: Sequence[OutgoingJob]) -> list[bool | BaseException]:
        """Store many jobs without waiting for each in turn; per job: duplicate flag or error."""
        ...

    async def republish(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Put a job back on its queue (its message's level), deduplicated by `msg_id`."""

    async def open_source(
        self, queue: str, options: QueueOptions, level: int | None = None
    ) -> JobSource:
        """Create (idempotently) the queue's shared consumer and return a puller on it.

        With a `level`, the consumer of that priority level's subject instead.
        """
        ...

    async def levels(self, queue: str) -> dict[int, int]:
        """Jobs stored on each priority level's own subject of `queue` (levels with none absent).

        Default-level jobs published on the queue's own subject are not counted here.
        """
        ...

    async def watch_levels(self, queue: str, heard: Callable[[int], None]) -> LevelWatch:
        """Call `heard(level)` when a job is stored on a watched level of `queue`."""
        ...

    async def delete_consumer(self, queue: str) -> bool:
        """Delete the queue's consumer and its pause (its jobs stay); False if it had none."""
        ...

    async def backlog(self, queue: str) -> int:
        """Jobs of `queue` waiting, being run, or waiting out a retry delay (not held ones)."""
        ...

    async def find(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue that still holds job `job_id` (waiting, running or between attempts)."""
        ...

    async def get(self, queue: str, job_id: str) -> StoredMessage | None:
        """The stored message of a job still in its queue, or None."""
        ...

    async def remove(self, queue: str, job_id: str) -> bool:
        """Delete a job that is still in its queue; False if it is not there."""
        ...
