"""`Slots`: how many jobs a worker runs at once over all its queues, shared fairly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aioq.errors import ConfigError

__all__ = ["Slots"]


@dataclass(slots=True, eq=False)
class _Waiter:
    queue: str
    most: int
    future: asyncio.Future[int]
    granted: int = field(default=0)


class Slots:
    """A counting semaphore shared by the worker's queues, handing out several permits at once.

    A fetch takes free slots up to its batch size, so the worker asks the broker for exactly
    as many jobs as it can start. With no other queue waiting, one queue may take every slot.
    When several queues wait, each freed slot goes to the waiting queue that holds the fewest,
    so busy queues end up with equal shares and none is starved.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = _check(capacity)
        self.used = 0
        self._held: dict[str, int] = {}
        self._waiters: list[_Waiter] = []

    @property
    def free(self) -> int:
        """Slots available now (0 when over capacity after a shrink)."""
        return max(0, self.capacity - self.used)

    def held(self, queue: str) -> int:
        """Slots that `queue` holds now."""
        return self._held.get(queue, 0)

    async def acquire(self, most: int, queue: str = "") -> int:
        """Wait for at least one free slot, then take up to `most` for `queue`; returns how many."""
        most = max(1, most)
        if not self._waiters and self.free:
            return self._take(queue, min(most, self.free))
        waiter = _Waiter(queue, most, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._grant()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.future.done() and not waiter.future.cancelled():
                self.release(waiter.future.result(), queue)
            raise

    def release(self, count: int = 1, queue: str = "") -> None:
        """Give back `count` slots of `queue`."""
        if count <= 0:
            return
        self.used -= count
        self._held[queue] = self._held.get(queue, 0) - count
        self._grant()

    def resize(self, capacity: int) -> None:
        """Change the capacity; running jobs above a smaller one finish normally."""
        self.capacity = _check(capacity)
        self._grant()

    def _take(self, queue: str, count: int) -> int:
        self.used += count
        self._held[queue] = self._held.get(queue, 0) + count
        return count

    def _grant(self) -> None:
        """Share the free slots among the waiters, one at a time, fewest held first."""
        free = self.free
        if not free or not self._waiters:
            return
        held = self._held
        open_ = [w for w in self._waiters if not w.future.done()]
        while free and open_:
            # min() keeps the first of equals: the longest waiting queue wins a tie.
            waiter = min(open_, key=lambda w: held.get(w.queue, 0) + w.granted)
            waiter.granted += 1
            free -= 1
            if waiter.granted == waiter.most:
                open_.remove(waiter)
        still: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            if waiter.granted:
                waiter.future.set_result(self._take(waiter.queue, waiter.granted))
            else:
                still.append(waiter)
        self._waiters = still


def _check(capacity: int) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ConfigError(f"concurrency must be an integer >= 1, got {capacity!r}")
    return capacity
