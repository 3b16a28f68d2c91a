"""`FakeClock`: a clock that moves only when told to, for testing delays without sleeping."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import datetime

__all__ = ["FakeClock", "FakeTimer"]

# Monotonic time starts here, not at 0, so that no code can take it for an unset value.
_MONOTONIC_START = 1_000.0


class FakeTimer:
    """A callback waiting for a `FakeClock` to reach its time; `cancel` drops it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not call the callback."""
        self.cancelled = True


class FakeClock:
    """A `aioq.clock.Clock` whose time moves only by `advance` (or by itself, see below).

    Give it to a `MemoryBroker`; aioq then reads it for store and start times, ttl, retry
    delays (a ``nak`` with a delay), delayed jobs, repeatable ticks and rate limits, so a one
    hour backoff is tested with ``clock.advance(3600)``. Task timeouts, job leases
    (``ack_wait``) and heartbeats stay on the event loop's real clock: moving fake time never
    takes a running job away from its worker.

    Args:
        start: Wall time to start at (unix seconds or an aware datetime; default: now).
        auto_advance: If set, whenever something waits on the clock, the clock jumps to the
            earliest wake-up after this many real seconds without an `advance`: waits of any
            length take about that long, and tests need not call `advance` themselves.
    """

    def __init__(
        self, start: float | datetime | None = None, *, auto_advance: float | None = None
    ) -> None:
        if isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError("start must be a timezone-aware datetime")
            start = start.timestamp()
        if auto_advance is not None and auto_advance <= 0:
            raise ValueError(f"auto_advance must be > 0 seconds, got {auto_advance}")
        self._wall = time.time() if start is None else float(start)
        self._monotonic = _MONOTONIC_START
        self.auto_advance = auto_advance
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()
        self._jumper: asyncio.Task[None] | None = None
        self._advanced = 0

    def __repr__(self) -> str:
        stamp = datetime.fromtimestamp(self._wall).astimezone().isoformat(timespec="milliseconds")
        return f"FakeClock({stamp}, {len(self._live())} timers)"

    def time(self) -> float:
        """Fake wall-clock time in unix seconds."""
        return self._wall

    def monotonic(self) -> float:
        """Fake monotonic time; moves with `time`."""
        return self._monotonic

    def now(self) -> datetime:
        """`time` as an aware datetime in the local zone."""
        return datetime.fromtimestamp(self._wall).astimezone()

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        """Call `callback()` once the clock has moved `delay` seconds on."""
        timer = FakeTimer(self._monotonic + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        if self.auto_advance is not None:
            self._start_jumper()
        return timer

    async def sleep(self, seconds: float) -> None:
        """Return once the clock has moved `seconds` on (at once if not positive)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await woken
        finally:
            timer.cancel()

    def advance(self, seconds: float) -> None:
        """Move the clock `seconds` on, running every timer that comes due on the way.

        Each timer runs with the clock at its own due time, so what it triggers sees that
        time; the tasks it wakes run once the caller awaits something.
        """
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds})")
        self._advanced += 1
        target = self._monotonic + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._move(when)
            timer.callback()
        self._move(target)

    def advance_to(self, moment: float | datetime) -> None:
        """Move the clock on to wall time `moment` (unix seconds or an aware datetime)."""
        stamp = moment.timestamp() if isinstance(moment, datetime) else moment
        self.advance(max(0.0, stamp - self._wall))

    def next_timer(self) -> float | None:
        """Seconds until the earliest pending timer, or None if none waits."""
        live = self._live()
        return min(t.when for t in live) - self._monotonic if live else None

    def _move(self, monotonic: float) -> None:
        if monotonic > self._monotonic:
            self._wall += monotonic - self._monotonic
            self._monotonic = monotonic

    def _live(self) -> list[FakeTimer]:
        return [t for _, _, t in self._timers if not t.cancelled]

    def _start_jumper(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running loop: no auto-advance
            return
        jumper = self._jumper
        # A jumper of an earlier event loop (a clock shared by tests) is gone with its loop.
        if jumper is not None and not jumper.done() and jumper.get_loop() is loop:
            return
        self._jumper = loop.create_task(self._jump(), name="aioq-fake-clock")

    async def _jump(self) -> None:
        assert self.auto_advance is not None
        while True:
            seen = self._advanced
            await asyncio.sleep(self.auto_advance)
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            if not self._timers:
                return
            if self._advanced == seen:  # nobody moved the clock meanwhile
                self.advance(max(0.0, self._timers[0][0] - self._monotonic))
