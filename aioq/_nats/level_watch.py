"""`NatsLevelWatch`: hears the first job stored on a queue's priority level nobody pulls yet.

A core subscription on a level's subject gets every message published there, the ones the
jobs stream stores included, whoever publishes them. A worker subscribes only to the levels
it does not pull, and drops the subscription of a level once it pulls it: so a queue whose
jobs never use priorities costs its workers no message at all, and a busy level none either.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aioq.naming import Names

__all__ = ["NatsLevelWatch"]

log = logging.getLogger("aioq.nats")


class NatsLevelWatch:
    """One core subscription per watched level of one queue."""

    def __init__(
        self, nc: NatsClient, names: Names, queue: str, heard: Callable[[int], None]
    ) -> None:
        self._nc = nc
        self._names = names
        self._queue = queue
        self._heard = heard
        self._subs: dict[int, Subscription] = {}

    async def watch(self, levels: Collection[int]) -> None:
        """Listen on exactly `levels` from now on."""
        for level in [lv for lv in self._subs if lv not in levels]:
            await self._drop(level)
        for level in levels:
            if level not in self._subs:
                self._subs[level] = await self._nc.subscribe(
                    self._names.priority_subject(self._queue, level), cb=self._callback(level)
                )

    def _callback(self, level: int) -> Callable[[Msg], Awaitable[None]]:
        heard = self._heard

        async def on_msg(_msg: Msg) -> None:
            heard(level)

        return on_msg

    async def _drop(self, level: int) -> None:
        sub = self._subs.pop(level)
        try:
            await sub.unsubscribe()
        except Exception as e:  # a closed connection has no subscriptions left anyway
            log.debug("cannot unsubscribe from level %d of queue %s: %s", level, self._queue, e)

    async def close(self) -> None:
        """Stop listening on every level."""
        for level in list(self._subs):
            with contextlib.suppress(Exception):
                await self._drop(level)
