"""Jobs waiting for their dependencies, held by the broker (not in a worker's memory)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["WaitingStore"]


class WaitingStore(Protocol):
    """Waiting jobs by id: each an encoded `aioq.wire.WaitingJob`, changed by compare-and-set."""

    async def create(self, job_id: str, data: bytes) -> bool:
        """Store a waiting job; False if a job of this id waits already."""
        ...

    async def get(self, job_id: str) -> tuple[bytes, int] | None:
        """The waiting job and its revision, or None if no job of this id waits."""
        ...

    async def delete(self, job_id: str, revision: int) -> bool:
        """Remove the waiting job if it is still at `revision`; False if not."""
        ...

    async def ids(self, limit: int) -> list[str]:
        """Ids of waiting jobs, at most `limit` of them."""
        ...

    async def values(self, limit: int) -> list[bytes]:
        """The waiting jobs (`WaitingJob` JSON), at most `limit` of them, read at once."""
        ...
