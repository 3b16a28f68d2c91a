"""`Slots`: how many jobs a worker may hold at once, resizable while it runs."""

from __future__ import annotations

import asyncio
from collections import deque

from aioq.errors import ConfigError

__all__ = ["Slots"]


class Slots:
    """A counting semaphore that hands out several permits at once.

    A fetch takes every free slot up to its batch size, so the worker asks the broker for
    exactly as many jobs as it can start, never more.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = _check(capacity)
        self.used = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        """Slots available now (0 when over capacity after a shrink)."""
        return max(0, self.capacity - self.used)

    async def acquire(self, most: int) -> int:
        """Wait for at least one free slot, then take up to `most`; returns how many."""
        while self.free == 0:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
        taken = min(most, self.free)
        self.used += taken
        return taken

    def release(self, count: int = 1) -> None:
        """Give back `count` slots."""
        if count <= 0:
            return
        self.used -= count
        self._wake()

    def resize(self, capacity: int) -> None:
        """Change the capacity; running jobs above a smaller one finish normally."""
        self.capacity = _check(capacity)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.free:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


def _check(capacity: int) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ConfigError(f"concurrency must be an integer >= 1, got {capacity!r}")
    return capacity
