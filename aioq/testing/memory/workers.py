"""`MemoryWorkers`: worker heartbeats that expire after their TTL (real time), in memory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

__all__ = ["MemoryWorkers"]

Change = tuple[str, bytes | None]


class MemoryWorkers:
    """One heartbeat per worker, with the real monotonic time it expires."""

    def __init__(self) -> None:
        #: Worker id to (encoded `WorkerInfo`, real monotonic time it expires).
        self.heartbeats: dict[str, tuple[bytes, float]] = {}
        self._ttl: float | None = None
        self._watchers: list[asyncio.Queue[Change]] = []

    async def put(self, worker_id: str, data: bytes, ttl: float) -> None:
        """Write a heartbeat, gone `ttl` real seconds after its last write."""
        if self._ttl is None:
            self._ttl = ttl  # as a bucket's TTL: set by the first worker that creates it
        self.heartbeats[worker_id] = (data, time.monotonic() + ttl)
        self._tell((worker_id, data))

    async def delete(self, worker_id: str) -> None:
        """Remove a worker's heartbeat."""
        if self.heartbeats.pop(worker_id, None) is not None:
            self._tell((worker_id, None))

    async def list(self) -> list[bytes]:
        """The heartbeat of every worker that wrote one within its TTL."""
        now = time.monotonic()
        for worker_id, (_, expires) in list(self.heartbeats.items()):
            if expires <= now:
                del self.heartbeats[worker_id]
        return [data for data, _ in self.heartbeats.values()]

    async def ttl(self) -> float | None:
        """Seconds a heartbeat lasts without a new write; None before the first one."""
        return self._ttl

    async def watch(self) -> AsyncIterator[Change | None]:
        """Every heartbeat, None once they are all delivered, then each change as it comes."""
        if self._ttl is None:
            return  # no worker ever registered, as a missing bucket
        changes: asyncio.Queue[Change] = asyncio.Queue()
        self._watchers.append(changes)
        try:
            await self.list()  # drops the expired ones
            for worker_id, data in [(k, v[0]) for k, v in self.heartbeats.items()]:
                yield worker_id, data
            yield None
            while True:
                yield await changes.get()
        finally:
            with contextlib.suppress(ValueError):
                self._watchers.remove(changes)

    def _tell(self, change: Change) -> None:
        for watcher in self._watchers:
            watcher.put_nowait(change)
