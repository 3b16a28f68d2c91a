"""Job records: the latest state of each job, by id (the only way records are written)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["Records"]


class Records(Protocol):
    """Reads and writes of job records (encoded `aioq.wire.JobRecord`)."""

    async def put(self, job_id: str, data: bytes) -> None:
        """Store a record in order, without waiting for the broker to confirm it."""

    async def store(self, job_id: str, data: bytes) -> None:
        """Store a record and return once the broker has it (read-your-writes)."""

    async def get(self, job_id: str) -> bytes | None:
        """The latest record of a job, or None."""
        ...

    async def get_revision(self, job_id: str) -> tuple[bytes, int] | None:
        """The latest record of a job and its revision (for `swap`), or None."""
        ...

    async def swap(self, job_id: str, data: bytes, revision: int) -> bool:
        """Store a record only if `revision` is still the latest (0: no record yet).

        False, and nothing stored, if another record was stored since.
        """
        ...

    async def delete(self, job_id: str) -> None:
        """Forget a job's record."""

    def watch(self, job_id: str) -> AsyncIterator[bytes | None]:
        """Yield the job's current record (None if it has none), then every change."""
        ...
