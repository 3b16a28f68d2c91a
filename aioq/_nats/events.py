"""`NatsEvents`: lifecycle events and abort announcements on core NATS (live only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from aioq._nats.bulk import publish_all
from aioq._nats.listener import NatsListener
from aioq.naming import Names

__all__ = ["NatsEvents"]

_SUBJECTS_KEPT = 4096


class NatsEvents:
    """Publishes and listens to events and aborts; nothing is stored."""

    def __init__(self, nc: NatsClient, names: Names) -> None:
        self.nc = nc
        self.names = names
        self._subjects: dict[tuple[str, str], str] = {}  # two events per job use the same few

    def _subject(self, queue: str, kind: str) -> str:
        subject = self._subjects.get((queue, kind))
        if subject is None:
            subject = self._subjects[queue, kind] = self.names.event_subject(queue, kind)
            if len(self._subjects) > _SUBJECTS_KEPT:
                self._subjects.clear()
        return subject

    async def publish(self, queue: str, kind: str, data: bytes) -> None:
        """Publish a lifecycle event to live listeners."""
        await self.nc.publish(self._subject(queue, kind), data)

    async def publish_many(self, events: Iterable[tuple[str, str, bytes]]) -> None:
        """Publish many lifecycle events at once, in order."""
        subject = self._subject
        await publish_all(self.nc, ((subject(q, kind), b"", data) for q, kind, data in events))

    async def listen(self, queue: str | None = None) -> NatsListener:
        """Subscribe to the events of `queue` (all if None); the server has it on return."""
        return await NatsListener.open(self.nc, self.names.event_subject(queue or "*", "*"))

    async def announce_abort(self, job_id: str) -> None:
        """Tell every worker to cancel job `job_id` if it runs it."""
        await self.nc.publish(self.names.abort_subject(job_id), b"")
        await self.nc.flush()

    async def listen_aborts(
        self, handler: Callable[[str], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """Call `handler(job_id)` for every abort announced; returns an unsubscribe function."""

        async def on_msg(msg: Msg) -> None:
            await handler(msg.subject.rsplit(".", 1)[-1])

        sub = await self.nc.subscribe(self.names.abort_subject(), cb=on_msg)
        return sub.unsubscribe
