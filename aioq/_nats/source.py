"""`NatsSource`: a worker's puller on one queue's durable consumer."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from aioq._nats.delivery import NatsDelivery
from aioq._nats.inbox import PullInbox, pull_status
from aioq.backend.jobs import Delivery

__all__ = ["NatsSource"]

# A no_wait pull is answered at once; this only bounds a lost answer (e.g. a disconnect).
_NO_WAIT_TIMEOUT_S = 5.0
# A consumer at its max_ack_pending holds even a no_wait pull until acks make room, sending
# neither the rest of the batch nor a status. Once some jobs came, a pause this long ends
# the wait, so the jobs that did come are not kept from running; what the held pull brings
# later is handed out by the next fetch.
_NO_WAIT_QUIET_S = 0.005
# Extra wait for the server's own expiry notice of a lingering pull.
_LINGER_MARGIN_S = 1.0
_ENDED = object()


class NatsSource:
    """Pulls one queue's jobs from its durable consumer.

    The worker asks for what is available now (`fetch_now`, a ``no_wait`` pull sized to its
    free slots) and, only when the queue is empty, leaves a lingering pull for a single message
    (`fetch_next`). So it never has more messages requested than it has free slots, and an idle
    worker starts a job as soon as it is stored, without waiting for a batch to fill.
    """

    def __init__(self, nc: NatsClient, next_subject: str) -> None:
        self._inbox = PullInbox(nc, next_subject)
        self._held: list[Msg] = []
        # Messages the open pull may still bring, and when it is given up on (monotonic).
        self._owed = 0
        self._owed_until = 0.0
        self._lingering = False

    async def start(self) -> None:
        """Subscribe to the inbox that receives this source's pulled messages."""
        await self._inbox.start()

    async def fetch_now(self, count: int) -> list[Delivery]:
        """Up to `count` jobs that are available now, without waiting for new ones."""
        while self._collect(count) is _ENDED:
            pass
        if len(self._held) < count:
            # A pull cut short by the quiet pause may still be bringing jobs: asking for more
            # on top would leave the surplus waiting here, unstarted, while its lease runs.
            if not self._owing():
                await self._pull(count - len(self._held), _NO_WAIT_TIMEOUT_S, no_wait=True)
            elif self._lingering:
                # A lingering pull left open by an interrupted `fetch_next` (a puller of
                # several priority levels): it brings its job when there is one.
                return self._hand_over()
            await self._wait(count, _NO_WAIT_TIMEOUT_S, quiet=_NO_WAIT_QUIET_S)
        return self._hand_over()

    async def fetch_next(self, timeout: float) -> list[Delivery]:
        """Wait up to `timeout` seconds for one job; an empty list if none came."""
        while self._collect(1) is _ENDED:
            pass
        if not self._held:
            # The server expires the pull before the client gives up on it, so no message
            # can arrive for a pull nobody waits for.
            if not self._owing():
                await self._pull(1, timeout + _LINGER_MARGIN_S, expires=int(timeout * 1e9))
            await self._wait(1, timeout + _LINGER_MARGIN_S)
        return self._hand_over()

    async def _pull(self, batch: int, answered_within: float, **request: object) -> None:
        self._owed = batch
        self._lingering = "expires" in request
        self._owed_until = asyncio.get_running_loop().time() + answered_within
        await self._inbox.pull({"batch": batch, **request})

    def _owing(self) -> bool:
        """Whether the last pull may still bring jobs (not filled, ended, lost, or overdue)."""
        if self._inbox.lost or asyncio.get_running_loop().time() >= self._owed_until:
            self._owed = 0
        return self._owed > 0

    def _hand_over(self) -> list[Delivery]:
        held, self._held = self._held, []
        return [NatsDelivery(m) for m in held]

    async def _wait(self, count: int, timeout: float, quiet: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._collect(count) is not _ENDED and len(self._held) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if quiet is not None and self._held:
                remaining = min(remaining, quiet)
            if not await self._inbox.wait(remaining):
                return

    def _collect(self, count: int) -> object:
        """Move arrived job messages to `_held`; return `_ENDED` when a pull was answered."""
        arrived = self._inbox.arrived
        while arrived and len(self._held) < count:
            msg = arrived.popleft()
            status = pull_status(msg)
            if status is None:
                self._held.append(msg)
                self._owed = max(0, self._owed - 1)
            elif status != "100":  # 100 is an idle heartbeat; 404/408/409 end a pull
                self._owed = 0
                return _ENDED
        return None

    async def close(self) -> None:
        """Stop receiving, then hand back (nak) every message received but not yet returned."""
        await self._inbox.close(self._take_held)

    def _take_held(self) -> list[Msg]:
        held, self._held = self._held, []
        return held
