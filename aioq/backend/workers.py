"""The worker registry: one heartbeat record per live worker, gone after its TTL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["WorkerRegistry"]


class WorkerRegistry(Protocol):
    """Worker heartbeats (encoded `aioq.wire.WorkerInfo`)."""

    async def put(self, worker_id: str, data: bytes, ttl: float) -> None:
        """Write a heartbeat that disappears `ttl` seconds after its last write."""

    async def delete(self, worker_id: str) -> None:
        """Remove a worker's heartbeat."""

    async def list(self) -> list[bytes]:
        """The heartbeat of every worker still registered."""
        ...

    async def ttl(self) -> float | None:
        """Seconds a heartbeat lasts without a new write; None while no worker registered."""
        ...

    def watch(self) -> AsyncIterator[tuple[str, bytes | None] | None]:
        """Every heartbeat, None once they are all delivered, then each change as it comes.

        A change is ``(worker id, heartbeat)``, with None for a removed heartbeat (one that
        expired may produce nothing). Ends at once while no worker ever registered.
        """
        ...
