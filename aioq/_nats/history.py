"""`NatsHistory`: succeeded jobs' messages in the history stream, each with its own TTL.

One stream holds every queue's history; each message carries its queue's retention as a
per-message TTL (``Nats-TTL``, nats-server 2.11+), so queues may keep theirs for different
times and the server removes each message when its time is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Iterable

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from aioq._nats.provision import ensure_history
from aioq._nats.streams import MSG_ID, next_message
from aioq.backend.dead import StoredMessage
from aioq.naming import Names
from aioq.settings import Replication

__all__ = ["NatsHistory", "retentions"]

_TTL = "Nats-TTL"


class NatsHistory:
    """Keeps and reads back the messages of succeeded jobs."""

    def __init__(self, js: JetStreamContext, names: Names, replication: Replication) -> None:
        self.js = js
        self.names = names
        self.replication = replication
        self._ready = False

    async def keep(self, queue: str, job_id: str, data: bytes, retention: float) -> None:
        """Store the message of a succeeded job, once per job id (within the dedupe window)."""
        if not self._ready:
            await ensure_history(self.js, self.names, self.replication)
            self._ready = True
        headers = {MSG_ID: f"{job_id}:history", _TTL: str(max(1, math.ceil(retention)))}
        await self.js.publish(self.names.history_subject(queue, job_id), data, headers=headers)

    async def list(self, queue: str) -> AsyncIterator[StoredMessage]:
        """The kept messages of `queue`, oldest first, one read each."""
        stream, subject = self.names.history_stream, self.names.history_subject(queue)
        seq = 1
        while True:
            message = await next_message(self.js, stream, subject, seq)
            if message is None:
                return
            yield message
            seq = message.seq + 1


async def retentions(js: JetStreamContext, names: Names, queues: Iterable[str]) -> dict[str, float]:
    """Per queue that keeps a message now, the TTL of its latest one (one read per queue).

    One read only while the history stream is missing or empty: most apps keep no history.
    """
    try:
        info = await js.stream_info(names.history_stream)
    except NotFoundError:
        return {}
    if not info.state.messages:
        return {}

    async def latest(queue: str) -> float | None:
        with contextlib.suppress(NotFoundError):
            msg = await js.get_msg(names.history_stream, subject=names.history_subject(queue))
            ttl = (msg.headers or {}).get(_TTL, "")
            with contextlib.suppress(ValueError):
                return float(ttl)
        return None

    queues = list(queues)
    found = await asyncio.gather(*(latest(q) for q in queues))
    return {q: ttl for q, ttl in zip(queues, found, strict=True) if ttl is not None}
