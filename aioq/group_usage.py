"""The places and starts each group holds now under its limits (``app.group_limit``).

Read from the group keys of the limits bucket that the workers share
(`aioq.worker.group_places`): the lease log ``group.<group>.running`` (one entry per running
job, until its lease expires) and the token log ``group.<group>.rate``.
"""

from __future__ import annotations

import time
from typing import Final, TypeVar

import msgspec

from aioq.backend import Broker

__all__ = ["GroupUse", "read_groups"]

_RUNNING: Final = ".running"
_RATE: Final = ".rate"


class GroupUse(msgspec.Struct, frozen=True, kw_only=True):
    """What one group holds now.

    Attributes:
        group: The group.
        running: Its jobs running now: the places held in its lease log, expired leases
            (of a worker that died) not counted.
        started: Its starts in the current rate-limit window; None without a rate limit.
        rate_limit: The rate limit the workers last applied (starts per `rate_interval`).
        rate_interval: Seconds of that window.
    """

    group: str
    running: int = 0
    started: int | None = None
    rate_limit: int | None = None
    rate_interval: float | None = None


class _Leases(msgspec.Struct):
    leases: list[tuple[float, int]] = msgspec.field(default_factory=list)


class _Grants(msgspec.Struct):
    grants: list[tuple[float, int]] = msgspec.field(default_factory=list)
    limit: int | None = None
    interval: float | None = None


T = TypeVar("T")

_leases: Final = msgspec.json.Decoder(_Leases)
_grants: Final = msgspec.json.Decoder(_Grants)


async def read_groups(broker: Broker) -> list[GroupUse]:
    """Every group with state in the limits bucket, sorted by name (one read per key)."""
    state = await broker.inspection.group_state()
    now, clock = time.time(), broker.clock.time()  # leases: wall clock; grants: the broker's
    found: dict[str, GroupUse] = {}
    for key, data in state.items():
        if key.endswith(_RUNNING):
            group = key.removeprefix("group.").removesuffix(_RUNNING)
            running = sum(
                1 for expiry, _ in _decode(_leases, data, _Leases()).leases if expiry > now
            )
            use = found.get(group, GroupUse(group=group))
            found[group] = msgspec.structs.replace(use, running=running)
        elif key.endswith(_RATE):
            group = key.removeprefix("group.").removesuffix(_RATE)
            rate = _decode(_grants, data, _Grants())
            interval = rate.interval or 0.0
            started = sum(k for t, k in rate.grants if t + interval > clock)
            use = found.get(group, GroupUse(group=group))
            found[group] = msgspec.structs.replace(
                use, started=started, rate_limit=rate.limit, rate_interval=rate.interval
            )
    return [found[g] for g in sorted(found)]


def _decode(decoder: msgspec.json.Decoder[T], data: bytes, empty: T) -> T:
    """The value of a key, or `empty` if it is unreadable (a worker writes it afresh)."""
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return empty
