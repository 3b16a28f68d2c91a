"""The worker registry: one heartbeat record per live worker, gone after its TTL."""

from __future__ import annotations

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
