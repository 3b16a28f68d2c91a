"""`MemoryBroker`: the seam's concepts in memory, with JetStream's semantics."""

from __future__ import annotations

import asyncio
import time

import msgspec

from aioq.clock import SYSTEM_CLOCK, Clock
from aioq.testing.memory._stream import JobsStream
from aioq.testing.memory.control import MemoryControl
from aioq.testing.memory.dead import MemoryDead
from aioq.testing.memory.events import MemoryEvents
from aioq.testing.memory.held import MemoryHeld
from aioq.testing.memory.history import MemoryHistory
from aioq.testing.memory.inspection import MemoryInspection
from aioq.testing.memory.jobs import MemoryJobs
from aioq.testing.memory.records import MemoryRecords
from aioq.testing.memory.waiting import MemoryWaiting
from aioq.testing.memory.workers import MemoryWorkers
from aioq.wire import WorkerInfo

__all__ = ["MemoryBroker"]

_DEFAULT_MAX_PAYLOAD = 1024 * 1024
# As `aioq._nats.provision.DUPLICATE_WINDOW_S`.
_DUPLICATE_WINDOW_S = 120.0


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
        #: The stored messages: every queue's jobs and the held ones, with their consumers.
        self.stream = JobsStream(self._clock, duplicate_window)
        self.jobs = MemoryJobs(self.stream, max_payload)
        self.records = MemoryRecords(self._clock, keep_result)
        self.events = MemoryEvents()
        self.dead = MemoryDead(self._clock, duplicate_window)
        self.held = MemoryHeld(self.stream)
        self.history = MemoryHistory(self._clock, duplicate_window)
        self.control = MemoryControl(self.stream)
        self.workers = MemoryWorkers()
        self.waiting = MemoryWaiting()
        self.inspection = MemoryInspection(
            self.stream, self.records, self.dead, self.history, self.control
        )
        #: True between `connect` and `close` (the state stays either way).
        self.connected = False

    def __repr__(self) -> str:
        queued = sum(len(c.messages) for c in self.stream.queues.values())
        return f"<MemoryBroker {queued} queued, {len(self.stream.held.messages)} held>"

    @property
    def clock(self) -> Clock:
        """The time of job semantics."""
        return self._clock

    @property
    def max_payload(self) -> int:
        """Largest job accepted, in bytes."""
        return self._max_payload

    async def connect(self) -> None:
        """Nothing to reach: marks the broker connected."""
        self.connected = True

    async def close(self) -> None:
        """Marks the broker closed; its jobs, records and dead letters stay."""
        self.connected = False

    async def flush(self, timeout: float = 10.0) -> None:
        """Nothing is buffered; lets other tasks run once."""
        await asyncio.sleep(0)

    def live_workers(self) -> list[WorkerInfo]:
        """The heartbeats of the workers that wrote one within its TTL."""
        now = time.monotonic()
        heartbeats = self.workers.heartbeats.values()
        return [
            msgspec.json.decode(d, type=WorkerInfo) for d, expires in heartbeats if expires > now
        ]

    def in_flight(self, queue: str) -> int:
        """Jobs of `queue` delivered and not yet settled (running, or waiting out a retry)."""
        consumer = self.stream.queues.get(queue)
        return consumer.out() if consumer is not None else 0
