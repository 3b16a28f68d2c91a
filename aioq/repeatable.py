"""`Repeatable`: a task enqueued on a schedule (``app.add_repeatable``, ``@app.cron``)."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, Protocol, TypeVar, overload

from aioq.cron import CronSchedule, EverySchedule, Schedule, tick_id
from aioq.errors import ConfigError, EnqueueError
from aioq.options import CallOptions, seconds
from aioq.task import PreparedJob, TaskCall

if TYPE_CHECKING:
    from aioq.context import Context
    from aioq.task import Task

__all__ = ["CronDecorator", "Missed", "Repeatable", "define_repeatable"]

P = ParamSpec("P")
R = TypeVar("R")

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Room left in a job id (128 characters) for "cron-", the name, "-" and a unix time.
_NAME_MAX: Final = 64


class Missed(enum.StrEnum):
    """What a scheduler does with ticks that passed while no scheduler ran."""

    #: Fire the most recent missed tick once (the default): a job that runs "every hour"
    #: runs once after an outage, not once per lost hour.
    LATEST = "latest"
    #: Fire every missed tick, oldest first (at most the 100 most recent).
    ALL = "all"
    #: Fire none; wait for the next tick.
    SKIP = "skip"


class CronDecorator(Protocol):
    """What ``@app.cron(...)`` returns: makes a function (or a task) repeat; returns the task."""

    @overload
    def __call__(self, fn: Task[P, R]) -> Task[P, R]: ...

    @overload
    def __call__(
        self, fn: Callable[Concatenate[Context, P], Coroutine[Any, Any, R]]
    ) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], R]) -> Task[P, R]: ...


@dataclass(frozen=True, slots=True, eq=False)
class Repeatable:
    """A task enqueued at every tick of a schedule.

    Attributes:
        name: Unique name; part of each tick's job id ``cron-<name>-<unix time>``.
        task: The task it enqueues.
        schedule: When it fires (`EverySchedule` or `CronSchedule`).
        args: Positional arguments of every job.
        kwargs: Keyword arguments of every job.
        missed: What to do with ticks missed while no scheduler ran.
        ttl: Seconds after its tick after which an unstarted job is dropped.
    """

    name: str
    task: Task[Any, Any]
    schedule: Schedule
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    missed: Missed = Missed.LATEST
    ttl: float | None = None

    @property
    def queue(self) -> str:
        """The queue its jobs go to."""
        return self.task.queue

    def job_id(self, tick: float) -> str:
        """The job id of one tick."""
        return tick_id(self.name, tick)

    def prepare(self, tick: float) -> PreparedJob:
        """The job of one tick, ready to publish."""
        call = CallOptions(job_id=self.job_id(tick), ttl=self.ttl)
        return TaskCall(self.task, call).prepare(*self.args, **dict(self.kwargs))

    def next_fires(self, count: int, after: float) -> list[datetime]:
        """The next `count` ticks after `after` (unix seconds), in the schedule's zone."""
        zone = getattr(self.schedule, "tz", UTC)
        fires: list[datetime] = []
        tick = after
        for _ in range(count):
            tick = self.schedule.next_after(tick)
            fires.append(datetime.fromtimestamp(tick, zone))
        return fires

    def __repr__(self) -> str:
        return f"<Repeatable {self.name} task={self.task.name} {self.schedule.describe()}>"


def define_repeatable(
    task: Task[Any, Any],
    *,
    every: float | timedelta | None,
    cron: str | None,
    tz: str | tzinfo | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    name: str | None,
    missed: Missed | str,
    ttl: float | timedelta | None,
) -> Repeatable:
    """Validate the arguments of ``app.add_repeatable`` into a `Repeatable`.

    Raises:
        ConfigError: Neither or both of `every` and `cron`; an invalid cron expression, time
            zone, name or policy; arguments that do not fit the task or cannot be encoded.
    """
    schedule: Schedule
    if (every is None) == (cron is None):
        raise ConfigError("a repeatable job needs exactly one of every=... or cron=...")
    if every is not None:
        if tz is not None:
            raise ConfigError("tz applies to cron=... only; every=... ticks in real time")
        schedule = EverySchedule(every)
    else:
        assert cron is not None
        schedule = CronSchedule(cron, tz)
    chosen = _name(task.name if name is None else name, explicit=name is not None)
    try:
        policy = Missed(missed)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in Missed)
        raise ConfigError(f"missed must be one of {choices}, got {missed!r}") from None
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise ConfigError(f"args must be a list or tuple, got {args!r}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ConfigError(f"kwargs must be a dict, got {kwargs!r}")
    repeatable = Repeatable(
        name=chosen,
        task=task,
        schedule=schedule,
        args=tuple(args),
        kwargs=dict(kwargs or {}),
        missed=policy,
        ttl=seconds(ttl, "ttl"),
    )
    try:  # the arguments must fit and encode now, not at the first tick
        repeatable.prepare(schedule.next_after(0))
    except EnqueueError as e:
        raise ConfigError(f"repeatable {chosen}: {e}") from None
    return repeatable


def _name(name: str, *, explicit: bool) -> str:
    if not explicit:
        # Task names may hold '.' and ':', which job ids cannot.
        name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:_NAME_MAX]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"invalid repeatable name {name!r}: use 1-64 letters, digits, '_' or '-' "
            "(it becomes part of each tick's job id)"
        )
    return name
