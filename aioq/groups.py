"""Group limits: per-key (tenant, API key) rate and concurrency limits, as configured.

A job joins a group with ``with_options(group=...)`` (or ``@app.task(group=...)``); the app
sets the limits with ``app.group_limit(...)``, for one named group or as the default of every
group. Workers hold the limits together through the shared limits bucket
(`aioq.worker.groups`). Pure values and validation; no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from aioq.errors import ConfigError
from aioq.ratelimit import check_rate

__all__ = ["GROUP_PATTERN", "GroupLimit", "GroupLimits", "validate_group"]

# Groups become KV keys: their charset, dots only between words, at most 128 chars.
GROUP_PATTERN: Final = r"^[A-Za-z0-9_=-]+(\.[A-Za-z0-9_=-]+)*$"
GROUP_MAX_LENGTH: Final = 128
_GROUP_RE: Final = re.compile(GROUP_PATTERN)
#: Seconds a job over its group's `max_running` waits before it is offered again, by default.
DEFAULT_RECHECK_S: Final = 1.0


def validate_group(group: str) -> str:
    """Return `group` if it is a valid group name, else raise `ConfigError`."""
    if not isinstance(group, str) or len(group) > GROUP_MAX_LENGTH or not _GROUP_RE.match(group):
        raise ConfigError(
            f"invalid group {group!r}: use 1-{GROUP_MAX_LENGTH} letters, digits, '_', '-', '=' "
            "or dots between them (it becomes a KV key)"
        )
    return group


@dataclass(frozen=True, slots=True)
class GroupLimit:
    """The limits of one group, held over every worker of the app.

    Attributes:
        rate_limit: Most starts of the group's jobs per `rate_interval` (None: no limit).
        rate_interval: Seconds of the rate limit's window.
        max_running: Most of the group's jobs running at once (None: no limit).
        recheck: Seconds a job over `max_running` waits before it is offered again.
    """

    rate_limit: int | None = None
    rate_interval: float = 1.0
    max_running: int | None = None
    recheck: float = DEFAULT_RECHECK_S

    def __post_init__(self) -> None:
        check_rate(self.rate_limit, self.rate_interval)
        running = self.max_running
        if running is not None and (
            isinstance(running, bool) or not isinstance(running, int) or running < 1
        ):
            raise ConfigError(f"max_running must be a whole number >= 1, got {running!r}")
        recheck = self.recheck
        if isinstance(recheck, bool) or not isinstance(recheck, int | float) or not recheck > 0:
            raise ConfigError(f"recheck must be > 0 seconds, got {recheck!r}")

    @property
    def limited(self) -> bool:
        """True if any limit applies."""
        return self.rate_limit is not None or self.max_running is not None


class GroupLimits:
    """The app's group limits: one per named group, and a default for every other group."""

    def __init__(self) -> None:
        self._named: dict[str, GroupLimit] = {}
        self.default: GroupLimit | None = None

    def __bool__(self) -> bool:
        return self.default is not None or bool(self._named)

    def set(
        self,
        group: str | None,
        *,
        rate_limit: int | None,
        rate_interval: float | timedelta,
        max_running: int | None,
        recheck: float | timedelta,
    ) -> GroupLimit:
        """Set the limit of `group` (None: the default of every group without its own)."""
        interval = check_rate(rate_limit, rate_interval)[1]
        if isinstance(recheck, timedelta):
            recheck = recheck.total_seconds()
        limit = GroupLimit(rate_limit, interval, max_running, recheck)
        if group is None:
            self.default = limit
        else:
            self._named[validate_group(group)] = limit
        return limit

    def of(self, group: str) -> GroupLimit | None:
        """The limit that applies to `group`, or None if none does."""
        limit = self._named.get(group, self.default)
        return limit if limit is not None and limit.limited else None
