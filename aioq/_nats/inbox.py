"""The inbox of a pull consumer: messages in arrival order, pull statuses, and a clean close."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections import deque
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aioq.backend import ConsumerGoneError

__all__ = ["PullInbox", "close_pull_inbox", "connection_restored", "pull_status"]

log = logging.getLogger("aioq.nats")

# The live inboxes of each connection, told when it reconnects.
_inboxes: weakref.WeakKeyDictionary[NatsClient, weakref.WeakSet[PullInbox]] = (
    weakref.WeakKeyDictionary()
)


def connection_restored(nc: NatsClient) -> None:
    """Tell the inboxes of `nc` that it reconnected: the pulls they had open are gone."""
    for inbox in list(_inboxes.get(nc, ())):
        inbox.restored()


class PullInbox:
    """Receives what a pull consumer sends to one inbox, for as long as its puller lives.

    One subscription for every pull, so nothing is lost between two fetches; messages wait in
    `arrived`, in order, until the puller takes them.

    A pull lives on the server it was sent to: after a reconnect it is gone, and nothing would
    arrive until the puller gave up on it. So a reconnect sets `lost` and ends a `wait` at
    once, and the puller sends a new pull.
    """

    def __init__(self, nc: NatsClient, next_subject: str) -> None:
        self._nc = nc
        self._next_subject = next_subject
        self._subject = nc.new_inbox()
        self.arrived: deque[Msg] = deque()
        #: True once the connection was re-established after the last pull was sent.
        self.lost = False
        self._pulled_connected = False
        self._wakeup: asyncio.Future[None] | None = None
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe to the inbox."""
        self._sub = await self._nc.subscribe(self._subject, cb=self._on_msg)
        _inboxes.setdefault(self._nc, weakref.WeakSet()).add(self)

    def restored(self) -> None:
        """The connection reconnected: a pull sent before it is gone."""
        # A pull sent while disconnected waited in the client's buffer and went out on the
        # new connection: that one is still open.
        if self._pulled_connected:
            self.lost = True
            self._wake()

    async def _on_msg(self, msg: Msg) -> None:
        self.arrived.append(msg)
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def pull(self, request: dict[str, object]) -> None:
        """Send a pull request whose messages come to this inbox."""
        self.lost = False
        self._pulled_connected = self._nc.is_connected
        await self._nc.publish(
            self._next_subject, json.dumps(request).encode(), reply=self._subject
        )

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the next message.

        False if none came, or at once when the open pull was `lost` to a reconnect.
        """
        if self.lost:
            return False
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await self._wakeup
        except TimeoutError:
            return False
        finally:
            self._wakeup = None
        return not self.lost

    async def close(self, held: Callable[[], list[Msg]] = list) -> None:
        """Stop receiving, then nak what `held()` returns and every job message arrived."""
        sub, self._sub = self._sub, None
        inboxes = _inboxes.get(self._nc)
        if inboxes is not None:
            inboxes.discard(self)

        def leftovers() -> list[Msg]:
            messages = held() + [m for m in self.arrived if pull_status(m, check=False) is None]
            self.arrived.clear()
            return messages

        await close_pull_inbox(self._nc, sub, leftovers)


def pull_status(msg: Msg, *, check: bool = True) -> str | None:
    """The status of a message the server sent to a pull inbox; None for a job message.

    100 is an idle heartbeat; 404, 408 and 409 end a pull. With `check`, a status saying that
    nobody answers pulls (503: consumer or stream gone, JetStream down) raises
    `ConsumerGoneError`.
    """
    status = msg.headers.get("Status") if msg.headers else None
    if status is not None and check:
        description = msg.headers.get("Description", "") if msg.headers else ""
        if status == "503" or "consumer deleted" in description.lower():
            raise ConsumerGoneError(f"{status} {description}".strip())
    return status


async def close_pull_inbox(
    nc: NatsClient, sub: Subscription | None, leftovers: Callable[[], list[Msg]]
) -> None:
    """Drain `sub`, then nak every message `leftovers()` returns (received, never handed out).

    The subscription is drained, not just dropped: the server may have sent messages for a
    pull that is still open (in the socket, or in the subscription's queue), and a dropped one
    would wait out its whole lease. After the drain's round trip nothing more arrives: the
    server skips pulls whose inbox has no subscriber.

    A cancellation does not interrupt the drain: nats-py leaves a cancelled flush in its PONG
    queue, and the next PONG then breaks the connection (nats-io/nats.py#624 is the same
    defect in its flusher).
    """
    closing = asyncio.ensure_future(_close(nc, sub, leftovers))
    try:
        await asyncio.shield(closing)
    except asyncio.CancelledError:
        await asyncio.wait([closing])
        raise


async def _close(
    nc: NatsClient, sub: Subscription | None, leftovers: Callable[[], list[Msg]]
) -> None:
    if sub is not None:
        try:
            if nc.is_connected:
                await sub.drain()  # type: ignore[no-untyped-call]
            else:  # what is in flight is lost either way; it returns after its lease
                await sub.unsubscribe()
        except Exception as e:
            log.debug("cannot drain a pull inbox: %s", e)
    for msg in leftovers():
        with contextlib.suppress(Exception):
            await msg.nak()
