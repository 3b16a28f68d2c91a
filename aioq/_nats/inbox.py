"""The inbox of a pull consumer: messages in arrival order, pull statuses, and a clean close."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aioq.transport import ConsumerGoneError

__all__ = ["PullInbox", "close_pull_inbox", "pull_status"]

log = logging.getLogger("aioq.nats")


class PullInbox:
    """Receives what a pull consumer sends to one inbox, for as long as its puller lives.

    One subscription for every pull, so nothing is lost between two fetches; messages wait in
    `arrived`, in order, until the puller takes them.
    """

    def __init__(self, nc: NatsClient, next_subject: str) -> None:
        self._nc = nc
        self._next_subject = next_subject
        self._subject = nc.new_inbox()
        self.arrived: deque[Msg] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe to the inbox."""
        self._sub = await self._nc.subscribe(self._subject, cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        self.arrived.append(msg)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def pull(self, request: dict[str, object]) -> None:
        """Send a pull request whose messages come to this inbox."""
        await self._nc.publish(
            self._next_subject, json.dumps(request).encode(), reply=self._subject
        )

    async def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the next message; False if none came."""
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await self._wakeup
        except TimeoutError:
            return False
        finally:
            self._wakeup = None
        return True

    async def close(self, held: Callable[[], list[Msg]] = list) -> None:
        """Stop receiving, then nak what `held()` returns and every job message arrived."""
        sub, self._sub = self._sub, None

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
