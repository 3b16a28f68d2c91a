"""Task, queue and per-call options, validated where they are defined."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from aioq.backoff import BackoffLike, resolve_backoff
from aioq.errors import ConfigError
from aioq.groups import validate_group
from aioq.naming import validate_job_id, validate_queue
from aioq.priority import DEFAULT_PRIORITY, validate_priority
from aioq.ratelimit import check_rate

if TYPE_CHECKING:
    from aioq.repeatable import Repeatable

__all__ = [
    "MAX_RUN_AT",
    "CallOptions",
    "DependencySpec",
    "QueueOptions",
    "TaskOptions",
    "UniqueSpec",
    "WorkerOptions",
    "resolve",
    "seconds",
]

_T = TypeVar("_T")

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
    #: Priority level of the task's jobs, 0 (lowest) to 9 (highest).
    priority: int = DEFAULT_PRIORITY
    #: The group of the task's jobs, unless an enqueue gives its own.
    group: str | None = None

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
        priority: int = DEFAULT_PRIORITY,
        group: str | None = None,
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
            priority=validate_priority(priority),
            group=None if group is None else validate_group(group),
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
    #: One job at a time per task and arguments (see `unique_key`).
    unique: bool = False
    #: One job at a time per task and key: enqueueing again returns the job holding it.
    unique_key: str | None = None
    #: Seconds a unique key is held at most, if its job has not ended by then.
    unique_ttl: float | None = None
    #: Ids of the jobs that must succeed before this one is queued.
    depends_on: tuple[str, ...] = ()
    #: ``dead``: dead-letter the job if a dependency fails for good; ``run``: run it anyway.
    on_dependency_failure: str = "dead"
    #: Priority level of this job instead of the task's, 0 (lowest) to 9 (highest).
    priority: int | None = None
    #: The group whose limits the job obeys (``app.group_limit``).
    group: str | None = None

    def __post_init__(self) -> None:
        if self.priority is not None:
            validate_priority(self.priority)
        _check_unique(self)
        if self.group is not None:
            validate_group(self.group)
        _check_dependencies(self)
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


#: Seconds a unique key is held at most by default (a day), if its job has not ended.
DEFAULT_UNIQUE_TTL: Final = 86400.0
#: The longest a unique key may be held: the TTL of the unique KV bucket (30 days).
MAX_UNIQUE_TTL: Final = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class UniqueSpec:
    """The unique key a job claims before it is published."""

    #: The key in the unique bucket: a digest of the task and the key (or the arguments).
    key: str
    #: The key as given (None for a key made of the arguments).
    label: str | None
    ttl: float

    @classmethod
    def of(cls, task: str, call: CallOptions, arguments: bytes) -> UniqueSpec | None:
        """The unique key of a job of `task`, or None if the call asks for none.

        `arguments` are the job's encoded arguments, the key when none is given.
        """
        if not call.unique and call.unique_key is None:
            return None
        source = call.unique_key.encode() if call.unique_key is not None else arguments
        digest = hashlib.sha256(task.encode() + b"\0" + source).hexdigest()[:40]
        return cls(f"u-{digest}", call.unique_key, call.unique_ttl or DEFAULT_UNIQUE_TTL)


#: What a job does when one of its dependencies fails for good.
DEPENDENCY_FAILURE_POLICIES: Final = ("dead", "run")


@dataclass(frozen=True, slots=True)
class DependencySpec:
    """The jobs a job waits for, and what it does when one of them fails."""

    ids: tuple[str, ...]
    on_failure: str = "dead"
    #: ``first``: the dependency's result goes first in the arguments (a chain); ``list``: the
    #: list of the results does (a group's callback); None: nothing is passed.
    pass_results: str | None = None


def _check_dependencies(call: CallOptions) -> None:
    if call.on_dependency_failure not in DEPENDENCY_FAILURE_POLICIES:
        raise ConfigError(
            f"on_dependency_failure must be 'dead' or 'run', got {call.on_dependency_failure!r}"
        )
    if not call.depends_on:
        return
    for job_id in call.depends_on:
        validate_job_id(job_id)
    if call.delay is not None or call.run_at is not None:
        raise ConfigError("give depends_on=... or a delay/run_at, not both")
    if call.job_id is not None and call.job_id in call.depends_on:
        raise ConfigError(f"job {call.job_id} cannot depend on itself")


def _check_unique(call: CallOptions) -> None:
    key = call.unique_key
    if key is not None and (not isinstance(key, str) or not key or len(key) > 1024):
        raise ConfigError(
            f"unique_key must be a non-empty string of at most 1024 chars, got {key!r}"
        )
    if call.unique_ttl is None:
        return
    if not call.unique and key is None:
        raise ConfigError("unique_ttl needs unique=True or a unique_key")
    ttl = seconds(call.unique_ttl, "unique_ttl")
    if ttl is not None and ttl > MAX_UNIQUE_TTL:
        raise ConfigError(
            f"unique_ttl must be at most {MAX_UNIQUE_TTL:.0f} seconds (30 days), got {ttl}"
        )


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
    #: Seconds the messages of succeeded jobs are kept for replay (None: not kept).
    history: float | None = None

    def __post_init__(self) -> None:
        seconds(self.ack_wait, "ack_wait")
        seconds(self.history, "history")
        check_rate(self.rate_limit, self.rate_interval)
        if self.max_ack_pending == 0 or self.max_ack_pending < -1:
            raise ConfigError(
                f"max_ack_pending must be -1 (unlimited) or > 0, got {self.max_ack_pending}"
            )


@overload
def resolve(call: _T | None, task: _T, /) -> _T: ...
@overload
def resolve(call: _T | None, task: _T | None, queue: _T, /) -> _T: ...
@overload
def resolve(*layers: _T | None) -> _T | None: ...
def resolve(*layers: Any) -> Any:
    """The first setting given (not None), by precedence: call, then task, queue and app.

    ``resolve(job.timeout, task.options.timeout)`` is the job's own timeout if it was given
    at the enqueue, else the task's.
    """
    for value in layers:
        if value is not None:
            return value
    return None


#: A periodic function the worker runs, and its interval in seconds (see `Worker.add_scanner`).
ScannerSpec = tuple[Callable[[], Awaitable[None]], float | timedelta]


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker runs: every setting of `Worker`, `run_worker` and ``aioq worker``.

    Each of them takes its defaults from here; give a value (``WorkerOptions(concurrency=4)``)
    or override fields on the call (``Worker(app, options=options, concurrency=4)``). Durations are
    seconds (a `timedelta` works too).
    """

    #: Queues to pull from; each has one durable consumer shared by all workers.
    queues: Sequence[str] = ("default",)
    #: Most jobs running at once, over all the worker's queues. One busy queue may use every
    #: slot; when several are busy, they share the slots equally.
    concurrency: int = 10
    #: Seconds that a stop lets running jobs finish before they are cancelled and returned to
    #: their queue.
    shutdown_grace: float | timedelta = 30.0
    #: Seconds between heartbeats in the workers bucket.
    heartbeat_interval: float | timedelta = 10.0
    #: Silence after which a worker's heartbeat disappears (None: 3 intervals). Applies when
    #: the bucket is created.
    heartbeat_ttl: float | timedelta | None = None
    #: Install SIGTERM/SIGINT handlers (graceful stop, then forced stop on the second signal)
    #: while the worker runs; only possible in the main thread.
    handle_signals: bool = True
    #: Most job starts per `rate_interval` for this worker, bursts included (None: no limit;
    #: 0: start nothing until `Worker.set_rate_limit`). Queue limits apply on top.
    rate_limit: int | None = None
    #: Seconds of the rate limit's window.
    rate_interval: float | timedelta = 1.0
    #: Most jobs fetched from one queue in one request: bigger batches save round trips,
    #: smaller ones spread a backlog more evenly over several workers.
    max_batch: int = 256
    #: Run a scheduler inside the worker (delayed and repeatable jobs).
    scheduler: bool = True
    #: Names (or objects) of the repeatables its scheduler fires (None: all of the app's).
    repeatables: Sequence[str | Repeatable] | None = None
    #: The scheduler's polling period: how long a lost wake-up of a delayed job or a
    #: wall-clock jump can go unnoticed.
    scan_interval: float | timedelta = 1.0
    #: Return once the queues are empty and nothing runs (docs/worker.md, "Burst mode").
    burst: bool = False
    #: Seconds the event loop may stay blocked before a warning names the jobs running
    #: (None: half the smallest ``ack_wait`` of its queues; 0 turns it off).
    stall_warning: float | timedelta | None = None
    #: ``(async_function, interval)`` pairs run periodically while the worker runs.
    scanners: Sequence[ScannerSpec] = ()
    #: Serve Prometheus metrics on ``http://metrics_host:metrics_port/metrics`` (None: no
    #: metrics; 0: a free port, logged and in `Worker.metrics_address`). Needs the
    #: ``metrics`` extra; docs/observability.md lists the metrics.
    metrics_port: int | None = None
    #: The address the metrics are served on; loopback unless a scraper on another host
    #: must reach them.
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        queues = [self.queues] if isinstance(self.queues, str) else list(self.queues)
        object.__setattr__(self, "queues", tuple(dict.fromkeys(validate_queue(q) for q in queues)))
        if not self.queues:
            raise ConfigError("a worker needs at least one queue")
        for name in ("concurrency", "max_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        seconds(self.shutdown_grace, "shutdown_grace", allow_zero=True)
        seconds(self.heartbeat_interval, "heartbeat_interval")
        seconds(self.heartbeat_ttl, "heartbeat_ttl")
        seconds(self.scan_interval, "scan_interval")
        seconds(self.stall_warning, "stall_warning", allow_zero=True)
        check_rate(self.rate_limit, self.rate_interval)
        port = self.metrics_port
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
        ):
            raise ConfigError(f"metrics_port must be a port number 0-65535 or None, got {port!r}")
        if not isinstance(self.metrics_host, str) or not self.metrics_host:
            raise ConfigError(
                f"metrics_host must be a host name or address, got {self.metrics_host!r}"
            )

    @classmethod
    def for_tests(cls, **overrides: Any) -> WorkerOptions:
        """Options for a worker inside a test.

        No signal handlers (the test runner owns SIGINT), frequent heartbeats, and a grace
        period that fits in a test's timeout.
        """
        return cls(handle_signals=False, heartbeat_interval=0.5, shutdown_grace=5.0).replace(
            **overrides
        )

    def replace(self, **overrides: Any) -> WorkerOptions:
        """A copy with the given fields changed; an unknown name is a `ConfigError`."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - _WORKER_FIELDS)
        if unknown:
            raise ConfigError(
                f"unknown worker option {', '.join(unknown)}; "
                f"the options are: {', '.join(sorted(_WORKER_FIELDS))}"
            )
        return dataclasses.replace(self, **overrides)


_WORKER_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(WorkerOptions))
