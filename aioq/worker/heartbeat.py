"""The worker's heartbeat: a JSON record in the ``<prefix>-workers`` KV bucket."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

from aioq.backend import Broker
from aioq.wire import WorkerInfo, encode

__all__ = ["Heartbeat"]

log = logging.getLogger("aioq.worker")

_FIRST_RETRIES_S = (0.1, 0.2, 0.4, 0.8)


class Heartbeat:
    """Writes `record()` every `interval` seconds under the worker's id.

    The bucket's TTL (`ttl`, three intervals by default) removes the key of a worker that
    stops writing, so the bucket lists live workers only, judged by the server's clock.
    """

    def __init__(
        self,
        broker: Broker,
        worker_id: str,
        interval: float,
        ttl: float,
        snapshot: Callable[[], WorkerInfo],
    ) -> None:
        self.broker = broker
        self.worker_id = worker_id
        self.interval = interval
        self.ttl = ttl
        self.snapshot = snapshot

    async def beat(self) -> None:
        """Write one heartbeat now."""
        await self.broker.workers.put(self.worker_id, encode(self.snapshot()), self.ttl)

    async def first(self) -> None:
        """Write the first heartbeat, retrying a few times over about two seconds.

        On a cluster a bucket just created by another process can be unknown for a moment to
        the node this worker is connected to; a failure that lasts is raised.
        """
        for pause in _FIRST_RETRIES_S:
            try:
                await self.beat()
                return
            except Exception as e:
                log.debug("worker %s: first heartbeat failed (%s), retrying", self.worker_id, e)
            await asyncio.sleep(pause)
        await self.beat()

    async def run(self) -> None:
        """Beat every `interval` seconds until cancelled; failures are logged and retried.

        An outage (a cluster electing a leader, a lost quorum) fails every beat: the first
        failure is a warning, the rest are counted in the line that says beats work again.
        """
        failed = 0
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except Exception as e:
                failed += 1
                level = logging.WARNING if failed == 1 else logging.DEBUG
                log.log(level, "worker %s: heartbeat failed: %s", self.worker_id, e)
                continue
            if failed:
                log.warning(
                    "worker %s: heartbeats work again after %d failed", self.worker_id, failed
                )
                failed = 0

    async def remove(self) -> None:
        """Delete the heartbeat key so the worker leaves the list at once."""
        try:
            await self.broker.workers.delete(self.worker_id)
        except Exception as e:
            log.warning("worker %s: cannot remove its heartbeat: %s", self.worker_id, e)


def host_identity() -> tuple[str, int]:
    """Hostname and pid for the heartbeat."""
    return socket.gethostname(), os.getpid()


def now() -> float:
    """Wall-clock time for heartbeat timestamps."""
    return time.time()
