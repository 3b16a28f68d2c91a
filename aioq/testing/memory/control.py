"""`MemoryControl`: shared rate limits, repeatable ticks, unique keys and pauses, in memory."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Final

from aioq.errors import BrokerError
from aioq.testing.memory._stream import Consumer, JobsStream

__all__ = ["MemoryControl"]

# An open-ended pause: the latest time nats-server accepts, as `paused_until` reports it.
_FOREVER: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


class MemoryControl:
    """State every worker and scheduler of an app shares: limits, ticks, pauses."""

    def __init__(self, jobs: JobsStream) -> None:
        self.jobs = jobs
        self.clock = jobs.clock
        self.ticks: dict[str, bytes] = {}
        self.limits: dict[str, tuple[bytes, int]] = {}
        self.unique: dict[str, tuple[bytes, int]] = {}
        self._revision = 0

    async def last_tick(self, name: str) -> float | None:
        """The latest tick recorded for repeatable `name`."""
        data = self.ticks.get(name)
        if data is None:
            return None
        value = json.loads(data)["tick"]
        return float(value) if isinstance(value, int | float) else None

    async def record_tick(self, name: str, tick: float) -> None:
        """Record `tick` as fired, unless a later one is recorded."""
        recorded = await self.last_tick(name)
        if recorded is None or recorded < tick:
            record = {"tick": tick, "fired_at": self.clock.time()}
            self.ticks[name] = json.dumps(record).encode()

    async def read_limit(self, queue: str) -> tuple[bytes | None, int]:
        """The shared rate-limit state of `queue` and its revision (0: none yet)."""
        data, revision = self.limits.get(queue, (None, 0))
        return data, revision

    async def write_limit(self, queue: str, data: bytes, revision: int) -> bool:
        """Compare-and-set the shared rate-limit state of `queue`."""
        return self._swap(self.limits, queue, data, revision)

    async def read_unique(self, key: str) -> tuple[bytes | None, int]:
        """The holder of unique key `key` and its revision (0: free)."""
        data, revision = self.unique.get(key, (None, 0))
        return data, revision

    async def write_unique(self, key: str, data: bytes, revision: int) -> bool:
        """Compare-and-set the holder of unique key `key`."""
        return self._swap(self.unique, key, data, revision)

    async def delete_unique(self, key: str, revision: int) -> bool:
        """Free unique key `key` if it is still at `revision`."""
        if self.unique.get(key, (None, 0))[1] != revision:
            return False
        del self.unique[key]
        return True

    def _swap(
        self, table: dict[str, tuple[bytes, int]], key: str, data: bytes, revision: int
    ) -> bool:
        if table.get(key, (None, 0))[1] != revision:
            return False
        self._revision += 1
        table[key] = (data, self._revision)
        return True

    def _consumer(self, queue: str) -> Consumer:
        consumer = self.jobs.queues.get(queue)
        if consumer is None or not consumer.created:
            raise BrokerError(
                f"queue {queue!r} has no consumer yet: start a worker on it once "
                "(or check the queue name)"
            )
        return consumer

    async def pause(self, queue: str, until: datetime | None) -> None:
        """Deliver no job of `queue` until `until` (broker clock) or `resume`."""
        # No wake-up for an open-ended pause: a FakeClock that auto-advances would jump to it.
        self._consumer(queue)
        for consumer in self.jobs.consumers_of(queue):  # its priority levels' too
            consumer.pause((until or _FOREVER).timestamp(), wake=until is not None)
        await asyncio.sleep(0)

    async def resume(self, queue: str) -> None:
        """End the pause of `queue` at once."""
        self._consumer(queue)
        for consumer in self.jobs.consumers_of(queue):
            consumer.resume()
        await asyncio.sleep(0)

    async def paused_until(self, queue: str) -> datetime | None:
        """When the pause of `queue` ends, or None if it is not paused."""
        consumer = self.jobs.queues.get(queue)
        if consumer is None or not consumer.paused():
            return None
        assert consumer.paused_until is not None
        return datetime.fromtimestamp(consumer.paused_until, UTC)
