"""Pure checks over a scenario's `History`: lost, unexpected and duplicate jobs, latency.

- **lost**: acknowledged by the server to the producer, never completed and not dead-lettered;
- **unexpected**: completed, but the producer never attempted to enqueue it;
- **duplicate**: completed more than once. A duplicate is *explained* when a fault window
  overlaps the span from the start of its first completed execution to the start of its last
  one (the fault hit it while it ran, or between its runs): the at-least-once promise allows
  it. An unexplained duplicate is a bug;
- **unexpected dead**: dead-lettered although the scenario expected it to complete;
- **latency**: from the acknowledgement of the enqueue to the end of the first completion.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .history import Execution, Fault, History

# Records of different processes are stamped by one machine's clock; this covers the order of
# two writes in the same millisecond.
CLOCK_SLACK_S = 0.005


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A job completed more than once."""

    job: str
    completions: int
    explained: bool


@dataclass(frozen=True, slots=True)
class Latency:
    """Seconds from acknowledgement to first completion."""

    count: int
    p50: float
    p99: float
    max: float

    def describe(self) -> str:
        if not self.count:
            return "-"
        return f"p50 {self.p50:.2f}s p99 {self.p99:.2f}s max {self.max:.2f}s"


@dataclass(frozen=True, slots=True)
class Report:
    """The verdict on one history."""

    acknowledged: int
    completed: int
    lost: list[str]
    unexpected: list[str]
    duplicates: list[Duplicate]
    dead: dict[str, str]
    unexpected_dead: list[str]
    latency: Latency
    problems: list[str] = field(default_factory=list)

    @property
    def unexplained(self) -> list[Duplicate]:
        return [d for d in self.duplicates if not d.explained]

    @property
    def ok(self) -> bool:
        """No loss, no phantom completion, every duplicate explained, no stray dead letter."""
        bad = (self.lost, self.unexpected, self.unexplained, self.unexpected_dead, self.problems)
        return not any(bad)

    def summary(self) -> str:
        """One paragraph naming what is wrong (the first few ids of each kind)."""
        parts = [
            f"acknowledged={self.acknowledged} completed={self.completed}",
            f"duplicates={len(self.duplicates)} (unexplained {len(self.unexplained)})",
            f"dead={len(self.dead)} latency: {self.latency.describe()}",
        ]
        for name, ids in (
            ("lost", self.lost),
            ("unexpected", self.unexpected),
            ("unexplained duplicates", [d.job for d in self.unexplained]),
            ("unexpected dead", self.unexpected_dead),
        ):
            if ids:
                parts.append(f"{name} ({len(ids)}): {', '.join(sorted(ids)[:5])}")
        parts.extend(self.problems)
        return "; ".join(parts)


def lost(history: History) -> list[str]:
    """Acknowledged jobs with neither a completion nor a dead letter."""
    done = {e.job for e in history.completions} | set(history.dead)
    return sorted(set(history.acks) - done)


def unexpected(history: History) -> list[str]:
    """Completed jobs the producer never attempted to enqueue."""
    return sorted({e.job for e in history.completions} - history.attempted)


def overlaps(fault: Fault, start: float, end: float) -> bool:
    """Whether the fault's window meets ``[start, end]``."""
    return fault.start <= end + CLOCK_SLACK_S and fault.end >= start - CLOCK_SLACK_S


def explained(executions: Sequence[Execution], faults: Iterable[Fault]) -> bool:
    """Whether a fault explains the repeated completions of one job."""
    starts = sorted(e.start for e in executions)
    return any(overlaps(f, starts[0], starts[-1]) for f in faults)


def duplicates(history: History) -> list[Duplicate]:
    """Jobs completed more than once, each judged by the faults of the history."""
    by_job: dict[str, list[Execution]] = defaultdict(list)
    for execution in history.completions:
        by_job[execution.job].append(execution)
    return [
        Duplicate(job, len(runs), explained(runs, history.faults))
        for job, runs in sorted(by_job.items())
        if len(runs) > 1
    ]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(values)))
    return values[min(rank, len(values)) - 1]


def latency(history: History) -> Latency:
    """Acknowledgement to first completion, over the acknowledged jobs that completed."""
    first: dict[str, float] = {}
    for execution in history.completions:
        if execution.end < first.get(execution.job, math.inf):
            first[execution.job] = execution.end
    values = sorted(
        max(0.0, first[job] - acked) for job, acked in history.acks.items() if job in first
    )
    if not values:
        return Latency(0, math.nan, math.nan, math.nan)
    return Latency(len(values), percentile(values, 0.5), percentile(values, 0.99), values[-1])


def check(history: History, expected_dead: Iterable[str] = ()) -> Report:
    """Judge a history; `expected_dead` are the jobs meant to end in the dead letters."""
    completed = {e.job for e in history.completions}
    return Report(
        acknowledged=len(history.acks),
        completed=len(completed & set(history.acks)),
        lost=lost(history),
        unexpected=unexpected(history),
        duplicates=duplicates(history),
        dead=dict(history.dead),
        unexpected_dead=sorted(set(history.dead) - set(expected_dead)),
        latency=latency(history),
    )
