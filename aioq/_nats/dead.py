"""`NatsDead`: dead letters on ``<prefix>.dead.<queue>.<job id>`` in the dead-letter stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.js import JetStreamContext

from aioq._nats.streams import MSG_ID, last_message, next_message, subjects
from aioq.backend.dead import StoredMessage
from aioq.naming import Names

__all__ = ["NatsDead"]


class NatsDead:
    """Stores, reads and removes dead letters."""

    def __init__(self, js: JetStreamContext, names: Names) -> None:
        self.js = js
        self.names = names

    async def publish(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Store a dead letter; the id makes a repeated one a no-op."""
        subject = self.names.dead_subject(queue, job_id)
        await self.js.publish(subject, data, headers={MSG_ID: msg_id})

    async def list(self, queue: str, after: int = 0) -> AsyncIterator[StoredMessage]:
        """The dead letters of `queue` after sequence `after`, oldest first, one read each."""
        stream, subject = self.names.dead_stream, self.names.dead_subject(queue)
        seq = after + 1
        while True:
            message = await next_message(self.js, stream, subject, seq)
            if message is None:
                return
            yield message
            seq = message.seq + 1

    async def get(self, queue: str, job_id: str) -> StoredMessage | None:
        """The latest dead letter of job `job_id` on `queue`, or None."""
        subject = self.names.dead_subject(queue, job_id)
        return await last_message(self.js, self.names.dead_stream, subject)

    async def counts(self) -> dict[str, int]:
        """Dead-letter count per queue."""
        counts: dict[str, int] = {}
        found = await subjects(self.js, self.names.dead_stream, self.names.dead_subject("*"))
        for subject, count in found.items():
            queue = subject.split(".")[-2]
            counts[queue] = counts.get(queue, 0) + count
        return counts

    async def delete(self, seq: int) -> None:
        """Remove one dead letter."""
        await self.js.delete_msg(self.names.dead_stream, seq)

    async def purge(self, queue: str) -> int:
        """Remove every dead letter of `queue`; returns how many there were."""
        subject = self.names.dead_subject(queue)
        count = sum((await subjects(self.js, self.names.dead_stream, subject)).values())
        if count:
            await self.js.purge_stream(self.names.dead_stream, subject=subject)
        return count
