"""Job priorities: the levels, their validation, and the share each gets of a worker's starts.

A queue's jobs have a level from 0 (lowest) to 9 (highest), 5 by default. Level 5 jobs are
published on the queue's own subject; the others on a subject of their level, each pulled
through a consumer of its own (`aioq.naming.Names.priority_subject`).

**The rule.** While jobs of several levels wait, a worker starts them in proportion to
``2 ** level``: a level-9 job goes before a level-5 one 16 times out of 17, before a level-0
one 512 times out of 513. So higher levels go first and a lower level is never starved: it
gets at least one start in every ``1 + 2 ** (difference)`` while both have jobs waiting.
This is stride scheduling (`Shares`): each level has a pass that grows by ``1 / 2 ** level``
with each of its starts, and the next start goes to the waiting level with the lowest pass.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Final, Generic, TypeVar

import msgspec

from aioq.errors import ConfigError

__all__ = [
    "DEFAULT_PRIORITY",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "Shares",
    "priority_of",
    "validate_priority",
]

K = TypeVar("K", bound=Hashable)

MIN_PRIORITY: Final = 0
MAX_PRIORITY: Final = 9
#: The level of a job given none: it keeps the queue's own subject and consumer.
DEFAULT_PRIORITY: Final = 5


def validate_priority(value: object, where: str = "priority") -> int:
    """Return `value` if it is a priority level (an int 0-9), else raise `ConfigError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_PRIORITY <= value <= MAX_PRIORITY
    ):
        raise ConfigError(
            f"{where} must be a whole number from {MIN_PRIORITY} (lowest) to {MAX_PRIORITY} "
            f"(highest), default {DEFAULT_PRIORITY}; got {value!r}"
        )
    return value


class _Priority(msgspec.Struct):
    priority: int = DEFAULT_PRIORITY


_decode_priority = msgspec.json.Decoder(_Priority).decode


def priority_of(data: bytes) -> int:
    """The ``priority`` field of an encoded job message; the default if absent or unreadable."""
    if b'"priority"' not in data:
        return DEFAULT_PRIORITY
    try:
        level = _decode_priority(data).priority
    except msgspec.DecodeError:
        return DEFAULT_PRIORITY
    return level if MIN_PRIORITY <= level <= MAX_PRIORITY else DEFAULT_PRIORITY


def weight(level: int) -> float:
    """The share of starts `level` gets against others, while they all have jobs waiting."""
    return float(2**level)


class Shares(Generic[K]):
    """Splits a worker's starts between the sources of a queue's levels (the rule above).

    `plan` says how many jobs to ask of each source, `took` records what each was asked and
    gave. A source that had fewer jobs than asked loses its turn all the same, so a level
    that was empty for a while gets no saved-up credit when its jobs come.
    """

    def __init__(self) -> None:
        self._pass: dict[K, float] = {}

    def plan(self, levels: Mapping[K, int], count: int) -> dict[K, int]:
        """How many of `count` starts each source gets; `levels` gives each source's level."""
        floor = min(self._pass.values(), default=0.0)
        passes = {key: self._pass.get(key, floor) for key in levels}
        asked = dict.fromkeys(levels, 0)
        for _ in range(count):
            # The lowest pass wins; on a tie, the highest level.
            key = min(passes, key=lambda k: (passes[k], -levels[k]))
            asked[key] += 1
            passes[key] += 1.0 / weight(levels[key])
        return asked

    def took(self, levels: Mapping[K, int], turns: Mapping[K, int]) -> None:
        """Record the `turns` each source used: the jobs it gave, or those it was asked for."""
        floor = min(self._pass.values(), default=0.0)
        for key in levels:
            self._pass.setdefault(key, floor)
        for key, n in turns.items():
            self._pass[key] += n / weight(levels[key])

    def forget(self, key: K) -> None:
        """`key` is pulled no more; if it comes back, it starts at the others' pace."""
        self._pass.pop(key, None)
