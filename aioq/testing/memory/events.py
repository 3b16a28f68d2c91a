"""`MemoryEvents`: lifecycle events and abort announcements handed to live listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

__all__ = ["MemoryEventListener", "MemoryEvents"]

log = logging.getLogger("aioq.testing")

AbortHandler = Callable[[str], Awaitable[None]]


class MemoryEventListener:
    """Events of one queue (or all), from the moment it was opened."""

    def __init__(self, events: MemoryEvents, queue: str | None) -> None:
        self.queue = queue
        self._events = events
        self._arrived: asyncio.Queue[bytes] = asyncio.Queue()

    def deliver(self, queue: str, data: bytes) -> None:
        """Take an event published on `queue` if it listens to that queue."""
        if self.queue is None or self.queue == queue:
            self._arrived.put_nowait(data)

    async def messages(self) -> AsyncIterator[bytes]:
        """The encoded `Event` of each event, as it is published."""
        while True:
            yield await self._arrived.get()

    async def close(self) -> None:
        """Stop listening."""
        self._events.listeners.discard(self)


class MemoryEvents:
    """Events and aborts; nothing is stored."""

    def __init__(self) -> None:
        self.listeners: set[MemoryEventListener] = set()
        self.abort_handlers: list[AbortHandler] = []

    async def publish(self, queue: str, kind: str, data: bytes) -> None:
        """Hand a lifecycle event to the listeners of its queue."""
        for listener in list(self.listeners):
            listener.deliver(queue, data)

    async def publish_many(self, events: Iterable[tuple[str, str, bytes]]) -> None:
        """Hand many lifecycle events to the listeners, in order."""
        for queue, kind, data in events:
            await self.publish(queue, kind, data)

    async def listen(self, queue: str | None = None) -> MemoryEventListener:
        """Listen to the events of `queue` (all if None) from now on."""
        listener = MemoryEventListener(self, queue)
        self.listeners.add(listener)
        return listener

    async def announce_abort(self, job_id: str) -> None:
        """Tell every listening worker to cancel job `job_id`."""
        for handler in list(self.abort_handlers):
            try:
                await handler(job_id)
            except Exception:
                log.exception("abort handler %r failed for job %s", handler, job_id)

    async def listen_aborts(self, handler: AbortHandler) -> Callable[[], Awaitable[None]]:
        """Call `handler(job_id)` for every abort announced; returns the unsubscribe."""
        self.abort_handlers.append(handler)

        async def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self.abort_handlers.remove(handler)

        return unsubscribe
