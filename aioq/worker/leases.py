"""Leases of the jobs a worker holds: renewed (``in_progress``) while the jobs run or wait."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Final

from aioq.backend import Delivery

__all__ = ["LEASE_RENEW_FRACTION", "Lease", "keep_leases"]

# The lease is renewed when a third of it has passed, leaving two thirds of margin.
LEASE_RENEW_FRACTION: Final = 3


@dataclass(slots=True, eq=False)
class Lease:
    """A running job whose lease the worker keeps alive, renewed every `period` seconds."""

    delivery: Delivery
    period: float
    touched: float
    #: Set once the lease went unrenewed long enough that the broker may have handed the
    #: job to another worker (the event loop was blocked, or the process was frozen).
    lapsed: bool = False

    @classmethod
    def of(cls, delivery: Delivery, period: float) -> Lease:
        """The lease of `delivery`, counted from its last renewal (or its arrival), not from now."""
        return cls(delivery, period, delivery.renewed)

    def check(self, moment: float) -> bool:
        """Whether the lease lapsed: unrenewed for two periods (two thirds of the ack wait)."""
        if moment - self.touched > 2 * self.period:
            self.lapsed = True
        return self.lapsed


async def keep_leases(
    leases: Set[Lease], smallest_ack_wait: float, renewed: Callable[[int], None]
) -> None:
    """Renew, until cancelled, the lease of every job in `leases` held for a third of it.

    `renewed(count)` is told how many leases each round renewed.
    """
    tick = smallest_ack_wait / (2 * LEASE_RENEW_FRACTION)
    while True:
        await asyncio.sleep(tick)
        moment = time.monotonic()
        count = 0
        for lease in list(leases):
            lease.check(moment)  # before the renewal: a lapse must not go unnoticed
            if moment - lease.touched >= lease.period:
                lease.touched = moment
                with contextlib.suppress(Exception):
                    await lease.delivery.in_progress()
                    count += 1
        if count:
            renewed(count)
