"""Burst mode: noticing that a worker's queues are done, so that it stops by itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from aioq.backend import Broker

if TYPE_CHECKING:
    from aioq.scheduler import Scheduler
    from aioq.worker.execute import Stats

__all__ = ["BURST_CHECK_S", "BurstWatch"]

log = logging.getLogger("aioq.worker")

#: Seconds between a burst worker's idle checks; it exits after two in a row find it idle,
#: so a job between its acknowledgement and its after-job hooks is not missed.
BURST_CHECK_S: Final = 0.1


class BurstWatch:
    """Waits until a burst worker's queues are done.

    Args:
        worker_id: The worker's id, for its log lines.
        queues: The worker's queues.
        active: How many jobs the worker runs now.
        scheduler: The worker's embedded scheduler, if it runs one.
    """

    def __init__(
        self,
        worker_id: str,
        queues: Sequence[str],
        active: Callable[[], int],
        scheduler: Scheduler | None,
    ) -> None:
        self.worker_id = worker_id
        self.queues = queues
        self.active = active
        self.scheduler = scheduler
        self._paused: set[str] = set()

    async def until_done(self, broker: Broker) -> int:
        """Return once two checks in a row find the queues done: the delayed jobs left."""
        # The scheduler's start fires the repeatable ticks missed before it: wait for them.
        while self.scheduler is not None and not self.scheduler.ready:  # noqa: ASYNC110
            await asyncio.sleep(BURST_CHECK_S)
        quiet = 0
        while True:
            try:
                left = await self._left(broker)
            except Exception as e:
                log.warning("worker %s: burst check failed (%s), checking again", self.worker_id, e)
                left = None
            quiet = quiet + 1 if left is not None else 0
            if left is not None and quiet >= 2:
                return left
            await asyncio.sleep(BURST_CHECK_S)

    def log_done(self, stats: Stats, left: int) -> None:
        """Log what the burst ran, and the delayed jobs it leaves."""
        log.info(
            "worker %s: burst done, its queues are empty: ran %d jobs "
            "(%d succeeded, %d failed; %d attempts retried)",
            self.worker_id,
            stats.processed + stats.failed,
            stats.processed,
            stats.failed,
            stats.retried,
        )
        if left:
            log.info(
                "worker %s: left %d delayed jobs that are not yet due, for a later worker",
                self.worker_id,
                left,
            )

    async def _left(self, broker: Broker) -> int | None:
        """None while a burst worker has work to wait for; else the delayed jobs it leaves.

        Work to wait for: a job running here, a queue's backlog (waiting, running anywhere,
        or waiting out a retry delay) unless the queue is paused, and, when the worker runs
        a scheduler, delayed jobs of its queues that are due (the scheduler is releasing
        them).
        """
        if self.active():
            return None
        for queue in self.queues:
            if await broker.jobs.backlog(queue) and not await self._is_paused(broker, queue):
                return None
        left = 0
        if self.scheduler is not None:
            moment = self.scheduler.clock()
            for queue in self.queues:
                due, later = await broker.held.counts(queue, moment)
                if due:
                    return None
                left += later
        return None if self.active() else left

    async def _is_paused(self, broker: Broker, queue: str) -> bool:
        """Whether `queue` is paused; logs it the first time a burst worker finds it so."""
        until = await broker.control.paused_until(queue)
        if until is None:
            self._paused.discard(queue)
            return False
        if queue not in self._paused:
            self._paused.add(queue)
            log.info(
                "worker %s: queue %s is paused until %s; burst mode does not wait for its jobs",
                self.worker_id,
                queue,
                until.isoformat(),
            )
        return True
