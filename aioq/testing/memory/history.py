"""`MemoryHistory`: succeeded jobs' messages per queue, dropped after their retention."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

from aioq.backend.dead import StoredMessage
from aioq.clock import Clock
from aioq.testing.memory._stream import DedupeWindow

__all__ = ["MemoryHistory"]


class MemoryHistory:
    """Keeps and reads back the messages of succeeded jobs, like a stream with `max_age`."""

    def __init__(self, clock: Clock, duplicate_window: float) -> None:
        self.clock = clock
        self.kept: dict[str, list[tuple[StoredMessage, float]]] = {}
        self._seq = 0
        self._ids = DedupeWindow(clock, duplicate_window)

    async def keep(self, queue: str, job_id: str, data: bytes, retention: float) -> None:
        """Store the message of a succeeded job, once per job id within the window."""
        if self._ids.seen(f"{queue}:{job_id}"):
            return
        self._seq += 1
        message = StoredMessage(self._seq, f"{queue}.{job_id}", data, self.clock.time())
        self.kept.setdefault(queue, []).append((message, retention))

    async def list(self, queue: str) -> AsyncIterator[StoredMessage]:
        """The kept messages of `queue` still within their retention, oldest first."""
        now = self.clock.time()
        for message, retention in list(self.kept.get(queue, [])):
            if message.time is not None and now - message.time < retention:
                yield message

    def retention(self, queue: str) -> float | None:
        """The retention of the queue's latest message still kept (a whole second, as on NATS)."""
        now = self.clock.time()
        kept = [r for m, r in self.kept.get(queue, []) if m.time is not None and now - m.time < r]
        return float(max(1, math.ceil(kept[-1]))) if kept else None
