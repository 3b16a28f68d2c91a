"""A worker SIGKILLed while its jobs hold places of their group: the places come back."""

from __future__ import annotations

import signal
from pathlib import Path

import msgspec
import pytest

from aioq import Aarq

from ..helpers import eventually
from ..procs import APP_PATH, Procs, poll, read_events

pytestmark = pytest.mark.timeout(60)

_PLACES = "group.tenant.running"


def _worker(procs: Procs, url: str) -> None:
    procs.start("worker", APP_PATH, "-s", url, env={"AIOQ_TEST_ACK_WAIT": "2"})


async def _places(client: Aarq) -> list[object]:
    data, _ = await (await client.connect()).control.read_limit(_PLACES)
    return list(msgspec.json.decode(data)["leases"]) if data else []


async def test_the_places_of_a_killed_worker_come_back(
    client: Aarq, procs: Procs, nats_url: str, events: Path
) -> None:
    _worker(procs, nats_url)
    sleep_for, echo = client.get_task("sleep_for"), client.get_task("echo")
    # The group (max_running=2 in the app) is full while these sleep.
    held = [await sleep_for.with_options(group="tenant").enqueue(30.0) for _ in range(2)]
    starts = lambda: [e for e in read_events(events) if e["event"] == "start"]  # noqa: E731
    await poll(lambda: len(starts()) == 2, 15, "both jobs started", procs.started[0])
    assert len(await _places(client)) == 2
    procs.started[0].send(signal.SIGKILL)
    await procs.started[0].wait_exit()
    # Their messages go away: only the end of the dead worker's leases can free the places.
    broker = await client.connect()
    for job in held:
        assert await broker.jobs.remove(job.queue, job.id)
    later = [await echo.with_options(group="tenant").enqueue(n) for n in range(3)]
    _worker(procs, nats_url)
    assert [await job.result(timeout=30) for job in later] == [0, 1, 2]
    await eventually(lambda: _places_empty(client), timeout=10)


async def _places_empty(client: Aarq) -> bool:
    return await _places(client) == []
