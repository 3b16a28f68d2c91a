"""Job records written without waiting, whose acknowledgements are checked in the background.

A record write is a JetStream publish whose acknowledgement nobody awaits. All of them share
one reply subscription, so a write costs a publish and a dict entry, not a future each, and
each acknowledgement is handled where nats-py reads it (`_AckHandler`), with no task switch. A
write the server refused (no leader: a cluster electing one, or short of its quorum) or never
answered (its connection went) is written again with backoff, unless a later record of the
same job was written meanwhile: records of one job replace each other, the latest must win.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, cast

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

__all__ = ["RecordWrites"]

log = logging.getLogger("aioq.nats")

# A write unanswered this long is taken as lost with its connection, and written again.
_ACK_WAIT_S: Final = 5.0
_SWEEP_S: Final = 1.0
# Pauses before each rewrite: about a minute in all, longer than a leader election.
_RETRY_S: Final = (0.2, 0.5, 1.0, 2.0, 2.0, 4.0, 4.0, 8.0, 8.0, 15.0, 15.0)


class RecordWrites:
    """Writes `data` to ``prefix + key`` and makes sure the server stored the latest per key."""

    def __init__(self, nc: NatsClient, js: JetStreamContext, prefix: str) -> None:
        self._nc = nc
        self._js = js
        self._prefix = prefix
        self._inbox = nc.new_inbox() + "."
        self._count = 0
        self._latest: dict[str, int] = {}  # key -> token of its latest write
        self._waiting: dict[int, tuple[str, bytes, float]] = {}  # token -> key, data, sent
        self._tasks: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """Subscribe to the acknowledgements and start the sweeper of unanswered writes."""
        handler = cast("asyncio.Future[Msg]", _AckHandler(self._answered))
        await self._nc.subscribe(self._inbox + "*", future=handler)
        self._spawn(self._sweep())

    async def write(self, key: str, data: bytes) -> None:
        """Publish one record; its acknowledgement is checked later."""
        self._count += 1
        token = self._count
        self._latest[key] = token
        self._waiting[token] = (key, data, time.monotonic())
        await self._nc.publish(self._prefix + key, data, reply=f"{self._inbox}{token}")

    @property
    def unanswered(self) -> int:
        """Writes whose acknowledgement has not come yet."""
        return len(self._waiting)

    def _answered(self, msg: Msg) -> None:
        token = int(msg.subject[len(self._inbox) :])
        entry = self._waiting.pop(token, None)
        if entry is None:
            return
        key, data, _ = entry
        refused = (msg.headers or {}).get("Status") or b'"error"' in msg.data
        if not refused:
            if self._latest.get(key) == token:
                del self._latest[key]
            return
        if self._latest.get(key) == token:
            self._spawn(self._rewrite(key, token, data))

    async def _sweep(self) -> None:
        while not self._nc.is_closed:
            await asyncio.sleep(_SWEEP_S)
            cutoff = time.monotonic() - _ACK_WAIT_S
            lost = [t for t, (_, _, sent) in self._waiting.items() if sent < cutoff]
            for token in lost:
                key, data, _ = self._waiting.pop(token)
                if self._latest.get(key) == token:
                    self._spawn(self._rewrite(key, token, data))

    async def _rewrite(self, key: str, token: int, data: bytes) -> None:
        for pause in _RETRY_S:
            await asyncio.sleep(pause)
            if self._latest.get(key) != token or self._nc.is_closed:
                return
            try:
                await self._js.publish(self._prefix + key, data)
            except (nats.errors.Error, TimeoutError) as e:
                log.debug("record %s not stored yet (%s), retrying", key, e)
                continue
            if self._latest.get(key) == token:
                del self._latest[key]
            return
        log.warning("the latest record of job %s could not be stored; its state is stale", key)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _AckHandler:
    """Takes a subscription's messages in place of a request's future.

    nats-py gives every message of a subscription made with ``future=`` to that future's
    ``set_result``, in its reading loop, unless ``cancelled()``. A subscription with a
    callback would instead queue each message for a task of its own: a task switch and a
    coroutine per record write, a sixth of a no-op job's CPU.
    """

    __slots__ = ("_handle",)

    def __init__(self, handle: Callable[[Msg], None]) -> None:
        self._handle = handle

    def cancelled(self) -> bool:
        return False

    def set_result(self, msg: Msg) -> None:
        self._handle(msg)
