"""When repeatable jobs fire: fixed intervals and cron expressions (the only croniter user).

A schedule is a pure function of time, so every scheduler computes the same ticks without
talking to the others, and a tick's job id (`tick_id`) is the same wherever it is computed.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import datetime, timedelta, tzinfo
from typing import Final, Protocol

from aioq.errors import ConfigError

__all__ = ["CronSchedule", "EverySchedule", "Schedule", "tick_id", "ticks_between"]

_UTC: Final = zoneinfo.ZoneInfo("UTC")


class Schedule(Protocol):
    """The fire times (ticks) of a repeatable job, as unix seconds."""

    def next_after(self, t: float) -> float:
        """The first tick strictly after `t`."""
        ...

    def latest(self, t: float) -> float | None:
        """The last tick at or before `t` (None if there is none)."""
        ...

    def before(self, t: float) -> float | None:
        """The last tick strictly before `t` (None if there is none)."""
        ...

    def describe(self) -> str:
        """A short text for listings: ``every 300s`` or ``cron '*/5 * * * *' UTC``."""
        ...


class EverySchedule:
    """Ticks every `seconds`, at whole multiples of it since the unix epoch (UTC).

    Anchoring on the epoch rather than on a start time lets every scheduler agree on the
    ticks: ``every=timedelta(minutes=5)`` fires at :00, :05, :10 ... of each hour.
    """

    __slots__ = ("seconds",)

    def __init__(self, every: float | timedelta) -> None:
        value = every.total_seconds() if isinstance(every, timedelta) else every
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"every must be seconds (a number) or a timedelta, got {every!r}")
        if value < 1 or value != int(value):
            raise ConfigError(f"every must be a whole number of seconds >= 1, got {value}")
        self.seconds = int(value)

    def next_after(self, t: float) -> float:
        """The first tick strictly after `t`."""
        return float((math.floor(t / self.seconds) + 1) * self.seconds)

    def latest(self, t: float) -> float | None:
        """The last tick at or before `t`."""
        return float(math.floor(t / self.seconds) * self.seconds)

    def before(self, t: float) -> float | None:
        """The last tick strictly before `t`."""
        return float((math.ceil(t / self.seconds) - 1) * self.seconds)

    def describe(self) -> str:
        """``every 300s``."""
        return f"every {self.seconds}s"


class CronSchedule:
    """Ticks when a cron expression matches the wall clock of a time zone.

    Five fields (minute hour day-of-month month day-of-week), ``@hourly``-style shortcuts, or
    six with a trailing seconds field, as croniter reads them. Around daylight-saving changes:
    a wall time that does not exist (clocks go forward) fires at the next valid time; a wall
    time that occurs twice (clocks go back) fires once, at its first occurrence, unless the
    hour field is ``*``, in which case the ticks follow real time.
    """

    __slots__ = ("_once_per_wall_time", "expression", "tz", "tz_name")

    def __init__(self, expression: str, tz: str | tzinfo | None = None) -> None:
        if not isinstance(expression, str) or not expression.strip():
            raise ConfigError(f"cron must be a cron expression string, got {expression!r}")
        self.expression = " ".join(expression.split())
        self.tz, self.tz_name = _zone(tz)
        # Imported with the first cron schedule: croniter and dateutil take ~25 ms to load,
        # a sixth of `import aioq`, and most workers have no cron schedule.
        from croniter import CroniterError, croniter

        try:
            croniter(self.expression, datetime.now(self.tz))
        except (CroniterError, ValueError, KeyError) as e:
            raise ConfigError(
                f"invalid cron expression {expression!r}: {e}; use five fields (minute hour "
                "day-of-month month day-of-week), e.g. '*/5 * * * *' or '0 9 * * MON-FRI'"
            ) from None
        fields = self.expression.split()
        self._once_per_wall_time = (
            not fields[0].startswith("@") and len(fields) >= 2 and (fields[1] != "*")
        )

    def next_after(self, t: float) -> float:
        """The first tick strictly after `t`."""
        from croniter import croniter

        while True:
            tick = float(croniter(self.expression, self._at(t)).get_next(float))
            if not self._repeated(tick):
                return tick
            t = tick

    def latest(self, t: float) -> float | None:
        """The last tick at or before `t`."""
        # croniter's get_prev is strictly before its start; ticks fall on whole seconds.
        return self.before(math.floor(t) + 0.5)

    def before(self, t: float) -> float | None:
        """The last tick strictly before `t`."""
        from croniter import CroniterError, croniter

        while True:
            try:
                tick = float(croniter(self.expression, self._at(t)).get_prev(float))
            except CroniterError:
                return None
            if not self._repeated(tick):
                return tick
            t = tick

    def describe(self) -> str:
        """``cron '*/5 * * * *' Europe/Paris``."""
        return f"cron '{self.expression}' {self.tz_name}"

    def _at(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.tz)

    def _repeated(self, tick: float) -> bool:
        """True for the second occurrence of a wall time when clocks go back."""
        return self._once_per_wall_time and datetime.fromtimestamp(tick, self.tz).fold == 1


def _zone(tz: str | tzinfo | None) -> tuple[tzinfo, str]:
    if tz is None:
        return _UTC, "UTC"
    if isinstance(tz, tzinfo):
        return tz, str(getattr(tz, "key", None) or tz)
    if not isinstance(tz, str) or not tz:
        raise ConfigError(f"tz must be an IANA time zone name such as 'Europe/Paris', got {tz!r}")
    try:
        return zoneinfo.ZoneInfo(tz), tz
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {tz!r}: use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None


def ticks_between(schedule: Schedule, after: float, upto: float, most: int) -> list[float]:
    """Ticks in ``(after, upto]``, newest first, at most `most` of them."""
    found: list[float] = []
    tick = schedule.latest(upto)
    while tick is not None and tick > after and len(found) < most:
        found.append(tick)
        tick = schedule.before(tick)
    return found


def tick_id(name: str, tick: float) -> str:
    """The job id of one tick of repeatable `name`: ``cron-<name>-<unix seconds>``.

    The same on every scheduler, so JetStream's deduplication (``Nats-Msg-Id``) stores each
    tick once however many schedulers publish it.
    """
    return f"cron-{name}-{int(tick)}"
