"""`MemoryWaiting`: jobs waiting for their dependencies, in memory."""

from __future__ import annotations

__all__ = ["MemoryWaiting"]


class MemoryWaiting:
    """Waiting jobs by id, with revisions for compare-and-set."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[bytes, int]] = {}
        self._revision = 0

    async def create(self, job_id: str, data: bytes) -> bool:
        """Store a waiting job; False if a job of this id waits already."""
        if job_id in self.entries:
            return False
        self._revision += 1
        self.entries[job_id] = (data, self._revision)
        return True

    async def get(self, job_id: str) -> tuple[bytes, int] | None:
        """The waiting job and its revision, or None."""
        return self.entries.get(job_id)

    async def delete(self, job_id: str, revision: int) -> bool:
        """Remove the waiting job if it is still at `revision`."""
        found = self.entries.get(job_id)
        if found is None or found[1] != revision:
            return False
        del self.entries[job_id]
        return True

    async def ids(self, limit: int) -> list[str]:
        """Ids of waiting jobs, at most `limit`."""
        return list(self.entries)[:limit]

    async def values(self, limit: int) -> list[bytes]:
        """The waiting jobs, at most `limit`."""
        return [data for data, _ in list(self.entries.values())[:limit]]
