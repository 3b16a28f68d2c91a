"""Live signals: lifecycle events and abort announcements (nothing is stored)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Protocol

__all__ = ["EventListener", "Events"]


class EventListener(Protocol):
    """A live subscription to lifecycle events, in place when `Events.listen` returns."""

    def messages(self) -> AsyncIterator[bytes]:
        """The encoded `Event` of each event, as it is published."""
        ...

    async def close(self) -> None:
        """Stop listening."""


class Events(Protocol):
    """Publishing and listening to events and aborts."""

    async def publish(self, queue: str, kind: str, data: bytes) -> None:
        """Publish a lifecycle event to live listeners."""

    async def publish_many(self, events: Iterable[tuple[str, str, bytes]]) -> None:
        """Publish many lifecycle events (queue, kind, data) at once, in order."""

    async def listen(self, queue: str | None = None) -> EventListener:
        """Subscribe to the events of `queue` (all queues if None), from now on."""
        ...

    async def announce_abort(self, job_id: str) -> None:
        """Tell every worker to cancel job `job_id` if it runs it."""

    async def listen_aborts(
        self, handler: Callable[[str], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """Call `handler(job_id)` for each abort announced; returns the unsubscribe."""
        ...
