"""Dead letters: jobs that will not run again, kept per queue for inspection and retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["DeadLetterStore", "StoredMessage"]


class StoredMessage:
    """A message read back from the broker's storage (a dead letter, a queued job)."""

    __slots__ = ("data", "seq", "subject", "time")

    def __init__(self, seq: int, subject: str, data: bytes, time: float | None) -> None:
        self.seq = seq
        self.subject = subject
        self.data = data
        self.time = time


class DeadLetterStore(Protocol):
    """Storing, reading and removing dead letters."""

    async def publish(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Store a dead-letter record, deduplicated by `msg_id`."""

    def list(self, queue: str, after: int = 0) -> AsyncIterator[StoredMessage]:
        """The dead letters of `queue` stored after sequence `after`, oldest first (lazily)."""
        ...

    async def get(self, queue: str, job_id: str) -> StoredMessage | None:
        """The latest dead letter of job `job_id` on `queue`, or None."""
        ...

    async def counts(self) -> dict[str, int]:
        """Dead-letter count per queue."""
        ...

    async def delete(self, seq: int) -> None:
        """Remove one dead letter."""

    async def purge(self, queue: str) -> int:
        """Remove every dead letter of `queue`; returns how many there were."""
        ...
