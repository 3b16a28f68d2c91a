"""Held jobs: delayed jobs kept until their due time, then moved to their queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from aioq.backend.jobs import OutgoingJob

__all__ = ["HeldJob", "HeldJobs", "HeldStore"]


class HeldJob(Protocol):
    """A delayed job handed to a scheduler: held until `run_at`, then moved to its queue."""

    queue: str
    job_id: str
    #: The held message's body: the job, as it will be published on its queue.
    data: bytes
    #: Broker sequence of the held message.
    seq: int
    #: Unix time from which the job may start; None if the message carries no time.
    run_at: float | None
    #: Why the message's due time is unreadable (it is then dead-lettered); None if valid.
    run_at_error: str | None

    async def postpone(self, delay: float) -> None:
        """Hand it back to be delivered again (to any scheduler) in `delay` seconds."""

    async def release(self) -> bool:
        """Publish it on its queue (deduplicated by job id), then drop it from the hold.

        Returns True if the queue already had it (another scheduler was first).
        """
        ...

    async def hand_back(self) -> None:
        """Hand it back for immediate redelivery, to any scheduler."""

    async def discard(self) -> None:
        """Drop it from the hold without moving it to its queue (it was dead-lettered)."""


class HeldJobs(Protocol):
    """The held jobs, as a scheduler pulls them: new ones, and postponed ones come due."""

    async def fetch(self, timeout: float) -> Sequence[HeldJob]:
        """Wait up to `timeout` seconds for held jobs; empty if none came."""
        ...

    async def close(self) -> None:
        """Stop pulling and hand back anything received but not yet returned."""


class HeldStore(Protocol):
    """Holding delayed jobs, and finding, counting and removing them."""

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

    async def counts(self, queue: str, now: float) -> tuple[int, int]:
        """Delayed jobs of `queue` still held: ``(due by now, not yet due)``."""
        ...

    async def open(self) -> HeldJobs:
        """Create (idempotently) the schedulers' shared consumer and return a puller on it."""
        ...

    async def find(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue of a delayed job still held for later, or None."""
        ...

    async def remove(self, queue: str, job_id: str) -> bool:
        """Delete a delayed job that is still held; False if it is not held."""
        ...
