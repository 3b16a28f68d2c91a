"""`NatsListener`: a core NATS subscription confirmed by the server when it opens."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription

__all__ = ["NatsListener"]

log = logging.getLogger("aioq.nats")


class NatsListener:
    """A core NATS subscription whose server-side interest is confirmed when `open` returns."""

    def __init__(self, sub: Subscription) -> None:
        self._sub = sub

    @classmethod
    async def open(cls, nc: NatsClient, subject: str) -> NatsListener:
        """Subscribe to `subject`, and wait until the server has the subscription."""
        sub = await nc.subscribe(subject)
        await nc.flush()
        return cls(sub)

    async def messages(self) -> AsyncIterator[bytes]:
        """The payload of each message, as it arrives."""
        async for msg in self._sub.messages:
            yield msg.data

    async def close(self) -> None:
        """Unsubscribe (quietly, if the connection is gone already)."""
        try:
            await self._sub.unsubscribe()
        except Exception as e:
            log.debug("cannot unsubscribe from %s: %s", self._sub.subject, e)
