"""The figures a worker's metrics count, in plain Python: cheap to update on every job.

The event loop updates them; the scrape thread reads them (`aioq.metrics` turns them into
Prometheus families). Reads need no lock: each value is replaced or incremented in one step,
and a scrape that lands between two updates of one job only sees it half counted until the
next scrape.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Final

from aioq.worker.observe import Outcome

__all__ = ["OUTCOMES", "Figures", "Histogram", "Series"]

OUTCOMES: Final = tuple(Outcome)
_INDEX: Final = {outcome: i for i, outcome in enumerate(OUTCOMES)}


class Histogram:
    """Observations counted per bucket (not cumulative; the last bucket is +Inf) and summed."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose bound is >= it."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        """``(le, count)`` pairs as Prometheus shows them, and the sum."""
        counts, total = list(self.counts), self.total
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip([*map(_le, self.bounds), "+Inf"], counts, strict=True):
            running += count
            buckets.append((bound, running))
        return buckets, total


def _le(bound: float) -> str:
    return repr(float(bound))


class Series:
    """The counts of one (queue, task)."""

    __slots__ = ("duration", "finished", "started", "wait")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.started = 0
        self.finished = [0] * len(OUTCOMES)
        self.duration = Histogram(bounds)
        self.wait = Histogram(bounds)


class Figures:
    """Everything one worker counts; also its `JobObserver`."""

    def __init__(self, queues: Sequence[str], bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.series: dict[tuple[str, str], Series] = {}
        self.running = dict.fromkeys(queues, 0)
        self.pending: dict[str, float] = {}
        self.renewals = 0
        self.lag = 0.0

    def _series(self, queue: str, task: str) -> Series:
        found = self.series.get((queue, task))
        if found is None:
            found = self.series[queue, task] = Series(self.bounds)
        return found

    def started(self, queue: str, task: str, waited: float | None) -> None:
        """Count the start; observe the wait of a first attempt."""
        series = self._series(queue, task)
        series.started += 1
        if waited is not None:
            series.wait.observe(waited)
        self.running[queue] = self.running.get(queue, 0) + 1

    def stopped(self, queue: str) -> None:
        """One attempt fewer running."""
        self.running[queue] -= 1

    def finished(self, queue: str, task: str, outcome: Outcome, duration: float | None) -> None:
        """Count the outcome; observe how long the attempt ran."""
        series = self._series(queue, task)
        series.finished[_INDEX[outcome]] += 1
        if duration is not None:
            series.duration.observe(duration)

    def renewed(self, count: int) -> None:
        """Count lease renewals."""
        self.renewals += count
