"""A flow survives the SIGKILL of the worker process running it: another worker completes it."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from aioq import Aarq, JobState

from ..procs import APP_PATH, Procs, poll, read_events

pytestmark = pytest.mark.timeout(60)


def _worker(procs: Procs, url: str) -> None:
    procs.start("worker", APP_PATH, "-s", url, env={"AIOQ_TEST_ACK_WAIT": "2"})


async def test_worker_killed_in_the_middle_of_a_chain(
    client: Aarq, procs: Procs, nats_url: str, events: Path
) -> None:
    _worker(procs, nats_url)
    echo, sleep_for = client.get_task("echo"), client.get_task("sleep_for")
    # echo returns 30.0; sleep_for(30.0, later=0.1) sleeps 30 s on its first attempt only.
    flow = await client.chain(echo.s(30.0), sleep_for.s(later=0.1), echo.s())
    middle, last = flow.jobs[1], flow.jobs[2]
    await poll(lambda: _starts(events, middle.id), 15, "the middle job started", procs.started[0])
    assert (await last.status()).state == JobState.WAITING
    procs.started[0].send(signal.SIGKILL)
    await procs.started[0].wait_exit()
    _worker(procs, nats_url)
    assert await flow.result(timeout=30) is None
    records = await flow.status()
    assert [r.state for r in records] == [JobState.SUCCEEDED] * 3
    assert records[1].attempts == 2
    assert {e["pid"] for e in _starts(events, last.id)} == {procs.started[1].pid}


def _starts(events: Path, job_id: str) -> list[dict[str, object]]:
    return [e for e in read_events(events) if e["event"] == "start" and e["job"] == job_id]
