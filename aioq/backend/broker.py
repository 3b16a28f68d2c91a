"""The broker: a connection, and the seam's concepts as its attributes."""

from __future__ import annotations

from typing import Protocol

from aioq.backend.control import Control
from aioq.backend.dead import DeadLetterStore
from aioq.backend.events import Events
from aioq.backend.held import HeldStore
from aioq.backend.history import History
from aioq.backend.inspection import Inspection
from aioq.backend.jobs import Jobs
from aioq.backend.records import Records
from aioq.backend.waiting import WaitingStore
from aioq.backend.workers import WorkerRegistry
from aioq.clock import Clock

__all__ = ["Broker"]


class Broker(Protocol):
    """One connection to a broker; each concept of the seam is an attribute of it.

    The attributes are valid once `connect` has returned.
    """

    @property
    def jobs(self) -> Jobs:
        """Jobs on their queues: publish, pull, settle, find, remove."""
        ...

    @property
    def records(self) -> Records:
        """Job records: the only way a record is written."""
        ...

    @property
    def events(self) -> Events:
        """Lifecycle events and aborts."""
        ...

    @property
    def dead(self) -> DeadLetterStore:
        """Dead letters."""
        ...

    @property
    def held(self) -> HeldStore:
        """Delayed jobs held until they are due."""
        ...

    @property
    def history(self) -> History:
        """Messages of succeeded jobs, kept on queues that keep a history."""
        ...

    @property
    def control(self) -> Control:
        """Shared rate limits, queue pauses and repeatable ticks."""
        ...

    @property
    def workers(self) -> WorkerRegistry:
        """Worker heartbeats."""
        ...

    @property
    def waiting(self) -> WaitingStore:
        """Jobs waiting for their dependencies."""
        ...

    @property
    def inspection(self) -> Inspection:
        """Read-only views of queues, job records and held jobs."""
        ...

    @property
    def max_payload(self) -> int:
        """Largest message the broker accepts, in bytes."""
        ...

    @property
    def clock(self) -> Clock:
        """The time of job semantics: store times, ttl, retry delays, schedules, rate limits."""
        ...

    async def connect(self) -> None:
        """Connect and prepare the job and dead-letter storage."""

    async def close(self) -> None:
        """Flush pending acknowledgements and disconnect."""

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once the broker has everything sent so far (acks, records, events)."""
