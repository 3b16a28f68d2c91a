"""The seam between aioq's logic and its broker: what the client and the worker need from it.

`aioq._nats.NatsBroker` implements it on JetStream, `aioq.testing.MemoryBroker` in memory.
Everything above this seam (enqueue, execution, retries, dead letters, heartbeats, job
handles) is broker-agnostic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from aioq.backend.dead import StoredMessage
from aioq.backend.events import EventListener
from aioq.backend.held import HeldJob, HeldJobs
from aioq.backend.inspection import Inspection
from aioq.backend.jobs import ConsumerGoneError, Delivery, JobSource, OutgoingJob
from aioq.clock import Clock
from aioq.options import QueueOptions

__all__ = [
    "Broker",
    "ConsumerGoneError",
    "Delivery",
    "EventListener",
    "HeldJob",
    "HeldJobs",
    "Inspection",
    "JobSource",
    "JobStore",
    "OutgoingJob",
    "Scheduling",
    "StoredMessage",
]


class JobStore(Protocol):
    """The client side of the broker: job records, lookups, aborts, events and dead letters."""

    async def get_record(self, job_id: str) -> bytes | None:
        """The latest record (a `JobRecord`) of a job, or None."""
        ...

    async def store_record(self, job_id: str, data: bytes) -> None:
        """Store a job record and return once the broker has it (read-your-writes)."""

    async def get_record_revision(self, job_id: str) -> tuple[bytes, int] | None:
        """The latest record of a job and its revision (for `swap_record`), or None."""
        ...

    async def swap_record(self, job_id: str, data: bytes, revision: int) -> bool:
        """Store a job record only if `revision` is still the latest (0: no record yet).

        False, and nothing stored, if another record was stored since.
        """
        ...

    def watch_record(self, job_id: str) -> AsyncIterator[bytes | None]:
        """Yield the job's current record (None if it has none), then every change."""
        ...

    async def find_queued(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue that still holds job `job_id` (waiting, running or between attempts)."""
        ...

    async def remove_queued(self, queue: str, job_id: str) -> bool:
        """Delete a job that is still in its queue; False if it is not there."""
        ...

    async def find_held(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue of a delayed job still held for later, or None."""
        ...

    async def remove_held(self, queue: str, job_id: str) -> bool:
        """Delete a delayed job that is still held; False if it is not held."""
        ...

    async def publish_event(self, queue: str, kind: str, data: bytes) -> None:
        """Publish a lifecycle event to live listeners."""

    async def listen_events(self, queue: str | None = None) -> EventListener:
        """Subscribe to the events of `queue` (all queues if None), from now on."""
        ...

    async def announce_abort(self, job_id: str) -> None:
        """Tell every worker to cancel job `job_id` if it runs it."""

    def dead_letters(self, queue: str, after: int = 0) -> AsyncIterator[StoredMessage]:
        """The dead letters of `queue` after sequence `after`, oldest first (lazily)."""
        ...

    async def dead_letter(self, queue: str, job_id: str) -> StoredMessage | None:
        """The latest dead letter of job `job_id` on `queue`, or None."""
        ...

    async def dead_queues(self) -> dict[str, int]:
        """Dead-letter count per queue."""
        ...

    async def delete_dead(self, seq: int) -> None:
        """Remove one dead letter."""

    async def purge_dead(self, queue: str) -> int:
        """Remove every dead letter of `queue`; returns how many there were."""
        ...

    async def republish(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Put a job back on its queue, deduplicated by `msg_id` instead of its job id."""

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once the broker has everything sent so far."""


class Broker(Protocol):
    """Connection-level operations on the broker."""

    @property
    def max_payload(self) -> int:
        """Largest message the broker accepts, in bytes."""
        ...

    @property
    def clock(self) -> Clock:
        """The time of job semantics: store times, ttl, retry delays, schedules, rate limits."""
        ...

    @property
    def store(self) -> JobStore:
        """Job records, lookups, aborts, events and dead letters (the client side)."""
        ...

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once the broker has everything sent so far (acks, records, events)."""

    async def connect(self) -> None:
        """Connect and prepare the job and dead-letter storage."""

    async def close(self) -> None:
        """Flush pending acknowledgements and disconnect."""

    async def publish_job(
        self,
        queue: str,
        data: bytes,
        job_id: str,
        task: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Store one job of `task` (with `headers`); True if it was a duplicate of an earlier id."""
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

    async def backlog(self, queue: str) -> int:
        """Jobs of `queue` waiting, being run, or waiting out a retry delay (not held ones)."""
        ...

    async def put_worker(self, worker_id: str, data: bytes, ttl: float) -> None:
        """Write a worker heartbeat that disappears `ttl` seconds after its last write."""

    async def delete_worker(self, worker_id: str) -> None:
        """Remove a worker's heartbeat."""

    @property
    def inspection(self) -> Inspection:
        """Read-only views of queues, workers, job records and held jobs."""
        ...

    @property
    def scheduling(self) -> Scheduling:
        """Delayed jobs, repeatable ticks, shared rate limits and queue pauses."""
        ...


class Scheduling(Protocol):
    """Broker storage for the scheduler, rate limits and queue pauses."""

    async def hold(
        self,
        queue: str,
        data: bytes,
        job_id: str,
        run_at: float,
        headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Store a job to be moved (with `headers`) to `queue` at `run_at`; True if held already."""
        ...

    async def hold_many(
        self, jobs: Sequence[tuple[OutgoingJob, float]]
    ) -> list[bool | BaseException]:
        """Hold many ``(job, run_at)`` at once; per job: duplicate flag or error."""
        ...

    async def held_jobs(self, queue: str, now: float) -> tuple[int, int]:
        """Delayed jobs of `queue` still held: ``(due by now, not yet due)``."""
        ...

    async def open_held(self) -> HeldJobs:
        """Create (idempotently) the schedulers' shared consumer and return a puller on it."""
        ...

    async def last_tick(self, name: str) -> float | None:
        """The latest tick recorded as fired for repeatable `name`, or None."""
        ...

    async def record_tick(self, name: str, tick: float) -> None:
        """Record `tick` as fired for repeatable `name`, unless a later one is recorded."""

    async def read_limit(self, queue: str) -> tuple[bytes | None, int]:
        """The shared rate-limit state of `queue` and its revision (0: none yet)."""
        ...

    async def write_limit(self, queue: str, data: bytes, revision: int) -> bool:
        """Replace the state if it is still at `revision`; False if someone else wrote first."""
        ...

    async def pause_queue(self, queue: str, until: datetime | None) -> None:
        """Stop every worker of `queue` from receiving jobs, until `until` or resumed."""

    async def resume_queue(self, queue: str) -> None:
        """Undo `pause_queue`."""

    async def paused_until(self, queue: str) -> datetime | None:
        """When the pause of `queue` ends, or None if it is not paused."""
        ...

    async def delete_consumer(self, queue: str) -> bool:
        """Delete the consumer of `queue` (its jobs stay); False if it had none."""
        ...
