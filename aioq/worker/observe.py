"""What a worker tells its observers (metrics, traces): the interface, and the silent default.

The worker calls these hooks at each step of a job. Metrics (`aioq.metrics`) and traces
(`aioq.tracing`) implement them; without either, `SILENT` does nothing and nothing optional
is imported.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final, Protocol

__all__ = [
    "SILENT",
    "UNKNOWN_TASK",
    "AttemptSpan",
    "AttemptTracer",
    "JobObserver",
    "Outcome",
    "SilentObserver",
]

#: The task label of a job whose task is not registered, or that cannot be decoded: labels
#: stay bounded whatever a publisher sends.
UNKNOWN_TASK: Final = "(unknown)"


class Outcome(enum.StrEnum):
    """How an attempt (or a job that never started) ended."""

    SUCCEEDED = "succeeded"
    #: Failed, and comes back after its backoff.
    RETRIED = "retried"
    #: Failed for good: dead-lettered.
    FAILED = "failed"
    #: Waited longer than its ttl before starting.
    EXPIRED = "expired"
    ABORTED = "aborted"
    #: Delivered too often without an outcome (its workers died).
    CRASHED = "crashed"
    #: Could not be decoded, names no registered task, or its arguments do not fit.
    BAD_INPUT = "bad_input"


class JobObserver(Protocol):
    """Receives the worker's job events; each call must be cheap and must not raise."""

    def started(self, queue: str, task: str, waited: float | None) -> None:
        """An attempt starts; `waited`: seconds from enqueue to a first attempt, else None."""

    def stopped(self, queue: str) -> None:
        """An attempt that `started` left the worker (with an outcome or without one)."""

    def finished(self, queue: str, task: str, outcome: Outcome, duration: float | None) -> None:
        """A job got an outcome; `duration`: seconds it ran (None if it never started)."""

    def renewed(self, count: int) -> None:
        """`count` leases were renewed."""


class SilentObserver:
    """The observer of a worker without metrics: every hook does nothing."""

    def started(self, queue: str, task: str, waited: float | None) -> None:
        """Nothing."""

    def stopped(self, queue: str) -> None:
        """Nothing."""

    def finished(self, queue: str, task: str, outcome: Outcome, duration: float | None) -> None:
        """Nothing."""

    def renewed(self, count: int) -> None:
        """Nothing."""


SILENT: Final = SilentObserver()


class AttemptSpan(Protocol):
    """The trace span of one attempt: made current while the task runs, ended with it."""

    def end(self, outcome: Outcome | None, error: BaseException | None = None) -> None:
        """Record the outcome (None: handed back without one) and the error, then end."""


class AttemptTracer(Protocol):
    """Starts a span per attempt, continuing the trace its message's headers carry."""

    def begin(
        self,
        headers: Mapping[str, str] | None,
        *,
        task: str,
        queue: str,
        job_id: str,
        attempt: int,
    ) -> AttemptSpan | None:
        """Start the attempt's span and make it current in the running task (None: no span)."""
        ...
