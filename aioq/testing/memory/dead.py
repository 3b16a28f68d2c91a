"""`MemoryDead`: dead letters per queue, deduplicated within the window, in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aioq.backend.dead import StoredMessage
from aioq.clock import Clock
from aioq.testing.memory._stream import DedupeWindow

__all__ = ["MemoryDead"]


class MemoryDead:
    """Stores, reads and removes dead letters; sequences grow as a stream's."""

    def __init__(self, clock: Clock, duplicate_window: float) -> None:
        self.clock = clock
        self.letters: dict[int, StoredMessage] = {}
        self._owner: dict[int, tuple[str, str]] = {}
        self._seq = 0
        self._ids = DedupeWindow(clock, duplicate_window)

    async def publish(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Store a dead letter; nothing if `msg_id` is a recent duplicate."""
        if self._ids.seen(msg_id):
            return
        now = self.clock.time()
        self._seq += 1
        self.letters[self._seq] = StoredMessage(self._seq, f"{queue}.{job_id}", data, now)
        self._owner[self._seq] = (queue, job_id)

    def _of(self, queue: str, job_id: str | None = None) -> list[StoredMessage]:
        return [
            message
            for seq, message in self.letters.items()
            if self._owner[seq][0] == queue and (job_id is None or self._owner[seq][1] == job_id)
        ]

    async def list(self, queue: str, after: int = 0) -> AsyncIterator[StoredMessage]:
        """The dead letters of `queue` after sequence `after`, oldest first."""
        for message in self._of(queue):
            if message.seq > after and message.seq in self.letters:
                yield message

    async def get(self, queue: str, job_id: str) -> StoredMessage | None:
        """The latest dead letter of job `job_id` on `queue`, or None."""
        found = self._of(queue, job_id)
        return found[-1] if found else None

    async def counts(self) -> dict[str, int]:
        """Dead-letter count per queue."""
        counts: dict[str, int] = {}
        for queue, _ in self._owner.values():
            counts[queue] = counts.get(queue, 0) + 1
        return counts

    async def delete(self, seq: int) -> None:
        """Remove one dead letter."""
        self.letters.pop(seq, None)
        self._owner.pop(seq, None)

    async def purge(self, queue: str) -> int:
        """Remove every dead letter of `queue`; returns how many there were."""
        found = self._of(queue)
        for message in found:
            await self.delete(message.seq)
        return len(found)
