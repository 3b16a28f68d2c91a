"""The time source of a broker: wall time, monotonic time, and sleeping on them.

aioq reads the broker's clock (`aioq.transport.Broker.clock`) wherever time carries job
semantics: store and start times, ttl, retry delays, delayed jobs, repeatable ticks and rate
limits. `SystemClock` is the real one; `aioq.testing.FakeClock` is moved by hand in tests.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    """Where a broker and the code above it read the time."""

    def time(self) -> float:
        """Wall-clock time in unix seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""


class SystemClock:
    """The real clock: `time.time`, `time.monotonic` and `asyncio.sleep`."""

    def time(self) -> float:
        """Wall-clock time in unix seconds."""
        return time.time()

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep(seconds)`."""
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


#: The clock of every broker that is not given one.
SYSTEM_CLOCK: Clock = SystemClock()
