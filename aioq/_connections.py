"""`LoopConnections`: an app's broker connection, one per event loop.

A NATS connection belongs to the loop that opened it: its reader and its futures live there.
Keying connections by the running loop lets an app be used from successive
``asyncio.run(...)`` calls, from several threads each running a loop, and from the private
loop of ``enqueue_sync``. Each connection closes itself when its loop shuts down (the loop
cancels its remaining tasks, as ``asyncio.run`` does), so a loop that is gone leaves no
socket behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aioq.backend import Broker

__all__ = ["LoopConnections", "WorkerUsers"]


@dataclass(slots=True)
class _Slot:
    """One loop's connection: made under `lock`, closed by `guard` when the loop ends."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    broker: Broker | None = None
    guard: asyncio.Task[None] | None = None


class LoopConnections:
    """The connections of one app, keyed by the event loop that uses each.

    Args:
        open_broker: Makes a new, unconnected broker.
        close_at_loop_end: Closes a broker while its loop shuts down.
    """

    def __init__(
        self,
        open_broker: Callable[[], Broker],
        close_at_loop_end: Callable[[Broker], Awaitable[None]],
    ) -> None:
        self._open_broker = open_broker
        self._close_at_loop_end = close_at_loop_end
        self._mutex = threading.Lock()  # the map is shared by every thread's loop
        self._slots: dict[asyncio.AbstractEventLoop, _Slot] = {}
        #: The workers running on these connections.
        self.workers = WorkerUsers()

    def current(self) -> Broker | None:
        """The running loop's connected broker; None outside a loop or when not connected."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        slot = self._slots.get(loop)
        return slot.broker if slot is not None else None

    def any(self) -> Broker | None:
        """A connected broker of any loop that is not closed, or None."""
        with self._mutex:
            self._forget_closed_loops()
            return next((s.broker for s in self._slots.values() if s.broker is not None), None)

    async def connect(self) -> Broker:
        """The running loop's broker, connected on first use in this loop."""
        loop = asyncio.get_running_loop()
        with self._mutex:
            slot = self._slots.get(loop)
            if slot is None:
                self._forget_closed_loops()
                slot = self._slots[loop] = _Slot()
        if slot.broker is not None:
            return slot.broker
        async with slot.lock:
            if slot.broker is None:
                broker = self._open_broker()
                await broker.connect()
                slot.broker = broker
                slot.guard = loop.create_task(
                    self._close_when_loop_ends(loop, slot), name="aioq: connection guard"
                )
            return slot.broker

    async def close(self) -> None:
        """Close the running loop's connection, and forget those of closed loops."""
        loop = asyncio.get_running_loop()
        with self._mutex:
            slot = self._slots.pop(loop, None)
            self._forget_closed_loops()
        if slot is None:
            return
        guard = slot.guard
        if guard is not None and guard is not asyncio.current_task():
            guard.cancel()
            await asyncio.wait([guard])
        if slot.broker is not None:
            await slot.broker.close()

    async def _close_when_loop_ends(self, loop: asyncio.AbstractEventLoop, slot: _Slot) -> None:
        """Wait until cancelled: by `close`, or by the loop shutting down (then close)."""
        try:
            await loop.create_future()
        finally:
            with self._mutex:
                owned = self._slots.get(loop) is slot
                if owned:
                    del self._slots[loop]
            if owned and slot.broker is not None:
                with contextlib.suppress(Exception):
                    await self._close_at_loop_end(slot.broker)

    def _forget_closed_loops(self) -> None:
        # A loop closed without cancelling its tasks could not run the guard; its
        # connection cannot be closed any more (its loop is gone), only dropped.
        for loop in [loop for loop in self._slots if loop.is_closed()]:
            del self._slots[loop]


@dataclass(slots=True)
class _Users:
    running: int = 0
    opened_by_a_worker: bool = False


class WorkerUsers:
    """The workers running on an app's connection, per loop, and whether a worker opened it.

    The last worker to stop closes a connection that a worker opened, never one that the
    app's user opened, and never one that another worker still uses.
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Users] = (
            weakref.WeakKeyDictionary()
        )

    def join(self, connected: bool) -> None:
        """Count a worker starting in the running loop (`connected`: its connection is open)."""
        users = self._loops.setdefault(asyncio.get_running_loop(), _Users())
        users.opened_by_a_worker |= not connected
        users.running += 1

    def leave(self) -> bool:
        """Count a worker ending in the running loop; True if it must close the connection."""
        users = self._loops[asyncio.get_running_loop()]
        users.running -= 1
        if users.running == 0 and users.opened_by_a_worker:
            users.opened_by_a_worker = False
            return True
        return False
