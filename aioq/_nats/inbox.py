"""Closing the inbox of a pull consumer without stranding the messages still on their way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["close_pull_inbox"]

log = logging.getLogger("aioq.nats")


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
