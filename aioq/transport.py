"""The seam between aioq's logic and its broker: what the client and the worker need from it.

`aioq._nats.NatsBroker` implements it on JetStream. Everything above this seam (enqueue,
execution, retries, dead letters, heartbeats) is broker-agnostic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from aioq.errors import BrokerError
from aioq.options import QueueOptions

__all__ = ["Broker", "ConsumerGoneError", "Delivery", "JobSource", "OutgoingJob"]


class ConsumerGoneError(BrokerError):
    """A queue's consumer disappeared while a worker pulled from it; it can be re-created."""


class Delivery(Protocol):
    """A job message handed to a worker, and the ways to settle it."""

    data: bytes
    #: 1 on the first delivery, counted by the broker.
    attempt: int
    #: Broker sequence of the message, unique per enqueue.
    seq: int
    #: When the broker stored the message (unix seconds, broker clock).
    stored_at: float

    @property
    def msg_id(self) -> str | None:
        """The dedupe id the publisher set, if any."""
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
    """What `Broker.publish_jobs` needs of each job."""

    @property
    def queue(self) -> str:
        """Queue to publish to."""
        ...

    @property
    def data(self) -> bytes:
        """Encoded job message."""
        ...

    @property
    def job_id(self) -> str:
        """Dedupe id."""
        ...


class Broker(Protocol):
    """Connection-level operations on the broker."""

    @property
    def max_payload(self) -> int:
        """Largest message the broker accepts, in bytes."""
        ...

    async def connect(self) -> None:
        """Connect and prepare the job and dead-letter storage."""

    async def close(self) -> None:
        """Flush pending acknowledgements and disconnect."""

    async def publish_job(self, queue: str, data: bytes, job_id: str) -> bool:
        """Store one job; True if it was a duplicate of an earlier id."""
        ...

    async def publish_jobs(self, jobs: Sequence[OutgoingJob]) -> list[bool | BaseException]:
        """Store many jobs without waiting for each in turn; per job: duplicate flag or error."""
        ...

    async def open_source(self, queue: str, options: QueueOptions) -> JobSource:
        """Create (idempotently) the queue's shared consumer and return a puller on it."""
        ...

    async def publish_dead(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Store a dead-letter record, deduplicated by `msg_id`."""

    async def put_record(self, job_id: str, data: bytes) -> None:
        """Store a job's latest state (a `JobRecord`), in order, without waiting."""

    async def delete_record(self, job_id: str) -> None:
        """Forget a job's state."""

    async def publish_event(self, queue: str, kind: str, data: bytes) -> None:
        """Publish a lifecycle event to live listeners."""

    async def listen_aborts(
        self, handler: Callable[[str], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """Call `handler(job_id)` for each abort announced; returns the unsubscribe."""
        ...

    async def put_worker(self, worker_id: str, data: bytes, ttl: float) -> None:
        """Write a worker heartbeat that disappears `ttl` seconds after its last write."""

    async def delete_worker(self, worker_id: str) -> None:
        """Remove a worker's heartbeat."""
