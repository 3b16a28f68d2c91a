"""`MemoryRecords`: job records with the results bucket's retention, in memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aioq.clock import Clock

__all__ = ["MemoryRecords"]

# A results bucket with no retention still needs a bound: records of unfinished jobs.
_DEFAULT_RESULT_TTL_S = 86_400.0


@dataclass(slots=True)
class StoredRecord:
    """A record, when it was stored (broker clock), and its revision (its position)."""

    data: bytes
    stored_at: float
    revision: int


class MemoryRecords:
    """Job records by id; each write gets the next revision, as a KV bucket's sequence."""

    def __init__(self, clock: Clock, keep_result: float) -> None:
        self.clock = clock
        self.keep_result = keep_result or _DEFAULT_RESULT_TTL_S
        self.stored: dict[str, StoredRecord] = {}
        #: The revision of the latest write.
        self.revision = 0
        self._watchers: dict[str, list[asyncio.Queue[bytes | None]]] = {}

    async def put(self, job_id: str, data: bytes) -> None:
        """Store a record."""
        self.revision += 1
        self.stored[job_id] = StoredRecord(data, self.clock.time(), self.revision)
        for watcher in self._watchers.get(job_id, ()):
            watcher.put_nowait(data)

    async def store(self, job_id: str, data: bytes) -> None:
        """Store a record (at once, as every write here)."""
        await self.put(job_id, data)

    async def get(self, job_id: str) -> bytes | None:
        """The latest record of a job, or None (also once `keep_result` has passed)."""
        record = self.stored.get(job_id)
        if record is None:
            return None
        if record.stored_at + self.keep_result <= self.clock.time():
            del self.stored[job_id]
            return None
        return record.data

    async def get_revision(self, job_id: str) -> tuple[bytes, int] | None:
        """The latest record of a job and its revision, or None."""
        data = await self.get(job_id)
        return (data, self.stored[job_id].revision) if data is not None else None

    async def swap(self, job_id: str, data: bytes, revision: int) -> bool:
        """Store a record only if `revision` is still its latest (0: it has none)."""
        current = await self.get_revision(job_id)
        if (current[1] if current is not None else 0) != revision:
            return False
        await self.put(job_id, data)
        return True

    async def delete(self, job_id: str) -> None:
        """Forget a job's record."""
        if self.stored.pop(job_id, None) is not None:
            for watcher in self._watchers.get(job_id, ()):
                watcher.put_nowait(None)

    async def watch(self, job_id: str) -> AsyncIterator[bytes | None]:
        """Yield the job's current record (None if it has none), then every change."""
        changes: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._watchers.setdefault(job_id, []).append(changes)
        try:
            yield await self.get(job_id)
            while True:
                yield await changes.get()
        finally:
            watchers = self._watchers.get(job_id, [])
            with contextlib.suppress(ValueError):
                watchers.remove(changes)
            if not watchers:
                self._watchers.pop(job_id, None)
