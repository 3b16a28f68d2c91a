"""Task, queue and per-call options, validated where they are defined."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from aioq.backoff import BackoffLike, resolve_backoff
from aioq.errors import ConfigError
from aioq.naming import validate_job_id, validate_queue
from aioq.ratelimit import check_rate

__all__ = ["MAX_RUN_AT", "CallOptions", "QueueOptions", "TaskOptions", "seconds"]

Duration = float | int | timedelta

#: The latest due time a delayed job may have (unix seconds): 9999-12-31T23:59:59Z, the last
#: second a `datetime` can express.
MAX_RUN_AT: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def seconds(value: Duration | None, what: str, *, allow_zero: bool = False) -> float | None:
    """Convert a duration option to float seconds, rejecting negative (or zero) values."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{what} must be seconds (a number) or a timedelta, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number of seconds, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{what} must be {bound} seconds, got {value}")
    return float(value)


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How the worker runs one task; set by ``@app.task(...)``."""

    queue: str = "default"
    retries: int = 3
    timeout: float | None = None
    ttl: float | None = None
    backoff: Callable[[int], float] = field(default_factory=lambda: resolve_backoff(None))
    no_retry_for: tuple[type[BaseException], ...] = ()

    @classmethod
    def build(
        cls,
        *,
        queue: str,
        retries: int,
        timeout: Duration | None,
        ttl: Duration | None,
        backoff: BackoffLike | None,
        no_retry_for: tuple[type[BaseException], ...],
    ) -> TaskOptions:
        """Validate raw decorator arguments into options."""
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"retries must be an integer >= 0, got {retries!r}")
        for exc in no_retry_for:
            if not (isinstance(exc, type) and issubclass(exc, BaseException)):
                raise ConfigError(f"no_retry_for takes exception classes, got {exc!r}")
        return cls(
            queue=validate_queue(queue),
            retries=retries,
            timeout=seconds(timeout, "timeout"),
            ttl=seconds(ttl, "ttl"),
            backoff=resolve_backoff(backoff),
            no_retry_for=tuple(no_retry_for),
        )


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-enqueue options given through ``task.with_options(...)``."""

    job_id: str | None = None
    ttl: float | None = None
    timeout: float | None = None
    retries: int | None = None
    #: Seconds from the enqueue until the job may start.
    delay: float | None = None
    #: Unix time from which the job may start.
    run_at: float | None = None

    def __post_init__(self) -> None:
        if self.job_id is not None:
            validate_job_id(self.job_id)
        if self.retries is not None and (isinstance(self.retries, bool) or self.retries < 0):
            raise ConfigError(f"retries must be an integer >= 0, got {self.retries!r}")
        if self.delay is not None and self.run_at is not None:
            raise ConfigError("give delay=... or run_at=..., not both")
        if self.delay is not None:
            seconds(self.delay, "delay", allow_zero=True)
        if self.run_at is not None:
            _check_due(self.run_at, "run_at")

    def due_time(self, now: float) -> float | None:
        """When a job enqueued at `now` may start, or None if at once."""
        if self.run_at is not None:
            due = self.run_at
        else:
            due = _check_due(now + (self.delay or 0.0), f"delay={self.delay}")
        return due if due > now else None


def _check_due(due: float, what: str) -> float:
    """Reject a due time that is not a finite time before `MAX_RUN_AT`."""
    if isinstance(due, bool) or not isinstance(due, int | float) or not math.isfinite(due):
        raise ConfigError(f"{what} must be a finite unix time, got {due!r}")
    if due > MAX_RUN_AT:
        raise ConfigError(
            f"{what} puts the job after 9999-12-31T23:59:59Z, the latest due time a delayed job "
            "may have"
        )
    return float(due)


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """Settings of one queue's durable consumer, shared by all its workers.

    `ack_wait` is the lease: a job not acknowledged within it (and not kept alive, which the
    worker does for running jobs) is delivered again, to any worker.
    """

    ack_wait: float = 30.0
    max_ack_pending: int = -1
    #: Job starts allowed per `rate_interval` over all the queue's workers (None: no limit).
    rate_limit: int | None = None
    rate_interval: float = 1.0

    def __post_init__(self) -> None:
        seconds(self.ack_wait, "ack_wait")
        check_rate(self.rate_limit, self.rate_interval)
        if self.max_ack_pending == 0 or self.max_ack_pending < -1:
            raise ConfigError(
                f"max_ack_pending must be -1 (unlimited) or > 0, got {self.max_ack_pending}"
            )
