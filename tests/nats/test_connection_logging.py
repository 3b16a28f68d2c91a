"""Connection trouble is logged once: no line repeats within a second, an outage says so once."""

from __future__ import annotations

import logging

import pytest

from aioq import Aarq
from aioq._nats import NatsBroker
from aioq._nats.throttle import LogThrottle


def test_a_repeat_within_the_interval_is_held_and_counted() -> None:
    now = [0.0]
    throttle = LogThrottle(1.0, clock=lambda: now[0])
    assert throttle.admit("reset") == 0
    now[0] = 0.4
    assert throttle.admit("reset") is None
    assert throttle.admit("refused") == 0
    now[0] = 1.2
    assert throttle.admit("reset") == 1
    assert throttle.admit("reset") is None


async def test_the_same_nats_error_twice_at_once_is_one_log_line(
    app: Aarq, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await app.connect()
    assert isinstance(broker, NatsBroker)
    with caplog.at_level(logging.WARNING, logger="aioq.nats"):
        for _ in range(3):  # a dropped connection reports from its reader and its writer
            await broker._on_error(ConnectionResetError(104, "Connection reset by peer"))
    lines = [r.getMessage() for r in caplog.records if r.name == "aioq.nats"]
    assert lines == ["nats: ConnectionResetError: [Errno 104] Connection reset by peer"]


async def test_a_connection_down_for_long_says_so_once_and_reports_on_its_return(
    app: Aarq, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await app.connect()
    assert isinstance(broker, NatsBroker)
    with caplog.at_level(logging.WARNING, logger="aioq.nats"):
        await broker._on_disconnected()
        for attempt in range(5):  # one failed reconnect attempt a second
            broker._error_log = LogThrottle(0.0)  # as if a second had passed
            await broker._on_error(ConnectionRefusedError(111, f"Connect call failed {attempt}"))
            await broker._on_disconnected()
        await broker._on_reconnected()
    lines = [r.getMessage() for r in caplog.records if r.name == "aioq.nats"]
    assert lines[:2] == [
        "nats: disconnected, reconnecting",
        "nats: ConnectionRefusedError: [Errno 111] Connect call failed 0",
    ]
    assert len(lines) == 3
    assert lines[2].startswith("nats: reconnected after ")
    assert lines[2].endswith("(5 connection errors while down)")
