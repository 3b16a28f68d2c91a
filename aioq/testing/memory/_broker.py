"""`MemoryBroker`: the `aioq.transport.Broker` seam in memory, with JetStream's semantics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import msgspec

from aioq.clock import SYSTEM_CLOCK, Clock
from aioq.errors import PayloadTooLargeError
from aioq.options import QueueOptions
from aioq.testing.memory._scheduling import MemoryScheduling
from aioq.testing.memory._store import MemoryStore
from aioq.testing.memory._stream import Consumer, JobsStream, Message
from aioq.testing.memory.inspection import MemoryInspection
from aioq.transport import Delivery, OutgoingJob
from aioq.wire import WorkerInfo

__all__ = ["MemoryBroker", "MemoryDelivery", "MemorySource"]

_DEFAULT_MAX_PAYLOAD = 1024 * 1024
# As `aioq._nats.provision.DUPLICATE_WINDOW_S`.
_DUPLICATE_WINDOW_S = 120.0


class MemoryDelivery:
    """A job handed to a worker; settling it changes the broker's state at once."""

    __slots__ = ("_consumer", "_message", "attempt", "data", "seq", "stored_at")

    def __init__(self, consumer: Consumer, message: Message) -> None:
        self._consumer = consumer
        self._message = message
        self.data = message.data
        self.attempt = message.deliveries
        self.seq = message.seq
        self.stored_at = message.stored_at

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
        self._consumer.nak(self._message, self.attempt, delay)

    async def in_progress(self) -> None:
        """Reset the lease (``ack_wait``, real time)."""
        self._consumer.extend(self._message, self.attempt)

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


class MemoryBroker:
    """An in-memory broker for tests: aioq's worker, scheduler and client on no server.

    It reproduces what aioq relies on in JetStream: one durable consumer per queue shared by
    all workers, delivery counts (`attempt`), ack / nak with a delay / in-progress / term,
    redelivery once a lease (``ack_wait``) runs out, ``max_ack_pending``, deduplication of
    job ids within a window, the largest payload, dead letters, delayed jobs held for the
    schedulers, results kept for `keep_result`, live events, aborts, worker heartbeats with a
    TTL, rate-limit compare-and-set and queue pauses. The broker is the server: its state
    outlives ``app.close()``, and several apps given the same broker share it.

    Args:
        clock: Time of job semantics (default: the system clock). A `FakeClock` makes store
            times, ttl, retry delays, delayed jobs, repeatables, rate limits, the dedupe window
            and `keep_result` move only with it; leases and heartbeats stay on real time.
        max_payload: Largest job in bytes (NATS's default: 1 MiB).
        keep_result: Seconds a job record is kept (the app's `keep_result` applies on top:
            with 0 the worker deletes each final record).
        duplicate_window: Seconds a job id stays known for deduplication (aioq's 2 minutes).

    Use it with ``app.use_broker(MemoryBroker())`` before the app connects.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        max_payload: int = _DEFAULT_MAX_PAYLOAD,
        keep_result: float = 86_400.0,
        duplicate_window: float = _DUPLICATE_WINDOW_S,
    ) -> None:
        self._clock = clock or SYSTEM_CLOCK
        self._max_payload = max_payload
        self.jobs = JobsStream(self._clock, duplicate_window)
        self._store = MemoryStore(self._clock, self.jobs, keep_result, duplicate_window)
        self._scheduling = MemoryScheduling(self.jobs)
        #: Worker heartbeats: encoded `WorkerInfo` and the real monotonic time it expires.
        self.heartbeats: dict[str, tuple[bytes, float]] = {}
        self._inspection = MemoryInspection(self)
        #: True between `connect` and `close` (the state stays either way).
        self.connected = False

    def __repr__(self) -> str:
        queued = sum(len(c.messages) for c in self.jobs.queues.values())
        return f"<MemoryBroker {queued} queued, {len(self.jobs.held.messages)} held>"

    @property
    def clock(self) -> Clock:
        """The time of job semantics."""
        return self._clock

    @property
    def max_payload(self) -> int:
        """Largest job accepted, in bytes."""
        return self._max_payload

    @property
    def store(self) -> MemoryStore:
        """Job records, lookups, aborts, events and dead letters."""
        return self._store

    @property
    def scheduling(self) -> MemoryScheduling:
        """Delayed jobs, repeatable ticks, shared rate limits and queue pauses."""
        return self._scheduling

    @property
    def inspection(self) -> MemoryInspection:
        """Read-only views of queues, workers, job records and held jobs."""
        return self._inspection

    async def connect(self) -> None:
        """Nothing to reach: marks the broker connected."""
        self.connected = True

    async def close(self) -> None:
        """Marks the broker closed; its jobs, records and dead letters stay."""
        self.connected = False

    async def flush(self, timeout: float = 10.0) -> None:
        """Nothing is buffered; lets other tasks run once."""
        await asyncio.sleep(0)

    def _check_size(self, data: bytes) -> None:
        if len(data) > self._max_payload:
            raise PayloadTooLargeError(
                f"job is {len(data)} bytes, above the broker's max_payload of "
                f"{self._max_payload} bytes: pass a reference (a URL or object key) instead of "
                "the data itself"
            )

    async def publish_job(
        self,
        queue: str,
        data: bytes,
        job_id: str,
        task: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Store one job, deduplicated by its id."""
        self._check_size(data)
        return self.jobs.publish(queue, job_id, data, job_id, headers)

    async def publish_jobs(self, jobs: Sequence[OutgoingJob]) -> list[bool | BaseException]:
        """Store many jobs; per job, its duplicate flag."""
        for job in jobs:
            self._check_size(job.data)
        return [
            self.jobs.publish(job.queue, job.job_id, job.data, job.job_id, job.headers)
            for job in jobs
        ]

    async def open_source(self, queue: str, options: QueueOptions) -> MemorySource:
        """Create or update the queue's consumer and return a puller on it."""
        consumer = self.jobs.queue(queue)
        consumer.created = True
        consumer.ack_wait = options.ack_wait
        consumer.max_ack_pending = options.max_ack_pending
        consumer.changed.fire()
        return MemorySource(consumer)

    async def publish_dead(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Store a dead letter; the id makes a repeated one a no-op."""
        self._store.add_dead(queue, job_id, data, msg_id)

    async def put_record(self, job_id: str, data: bytes) -> None:
        """Store a job's latest state."""
        await self._store.put_record(job_id, data)

    async def delete_record(self, job_id: str) -> None:
        """Forget a job's state."""
        await self._store.delete_record(job_id)

    async def publish_event(self, queue: str, kind: str, data: bytes) -> None:
        """Hand a lifecycle event to live listeners."""
        await self._store.publish_event(queue, kind, data)

    async def listen_aborts(
        self, handler: Callable[[str], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """Call `handler(job_id)` for each abort announced; returns the unsubscribe."""
        return await self._store.listen_aborts(handler)

    async def backlog(self, queue: str) -> int:
        """Jobs of `queue` waiting, being run, or waiting out a retry delay (not held ones)."""
        consumer = self.jobs.queues.get(queue)
        return len(consumer.messages) if consumer is not None else 0

    async def put_worker(self, worker_id: str, data: bytes, ttl: float) -> None:
        """Write a worker heartbeat, gone `ttl` real seconds after its last write."""
        self.heartbeats[worker_id] = (data, time.monotonic() + ttl)

    async def delete_worker(self, worker_id: str) -> None:
        """Remove a worker's heartbeat."""
        self.heartbeats.pop(worker_id, None)

    def live_workers(self) -> list[WorkerInfo]:
        """The heartbeats of the workers that wrote one within its TTL."""
        now = time.monotonic()
        for worker_id, (_, expires) in list(self.heartbeats.items()):
            if expires <= now:
                del self.heartbeats[worker_id]
        return [msgspec.json.decode(data, type=WorkerInfo) for data, _ in self.heartbeats.values()]

    def in_flight(self, queue: str) -> int:
        """Jobs of `queue` delivered and not yet settled (running, or waiting out a retry)."""
        consumer = self.jobs.queues.get(queue)
        return consumer.out() if consumer is not None else 0
