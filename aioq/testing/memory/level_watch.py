"""`MemoryLevelWatch`: hears the first job stored on a queue's priority level nobody pulls yet."""

from __future__ import annotations

from collections.abc import Callable, Collection

from aioq.testing.memory._stream import JobsStream

__all__ = ["MemoryLevelWatch"]


class MemoryLevelWatch:
    """Calls back when a job is stored on a watched level of one queue."""

    def __init__(self, stream: JobsStream, queue: str, heard: Callable[[int], None]) -> None:
        self._stream = stream
        self._queue = queue
        self._heard = heard
        self._levels: set[int] = set()

    async def watch(self, levels: Collection[int]) -> None:
        """Listen on exactly `levels` from now on."""
        watchers = self._stream.level_watchers
        for level in self._levels - set(levels):
            watchers.get((self._queue, level), set()).discard(self._heard)
        self._levels = set(levels)
        for level in self._levels:
            watchers.setdefault((self._queue, level), set()).add(self._heard)

    async def close(self) -> None:
        """Stop listening."""
        await self.watch(())
