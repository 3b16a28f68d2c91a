"""Schedulers in real processes: ``aioq worker`` (embedded scheduler, ``--no-scheduler``,
``--rate-limit``), ``aioq scheduler``, ``aioq schedules`` and ``aioq queue pause|resume``."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

from aioq import Aarq, Context
from aioq.embedded import server_version

from ..procs import Procs, delete_prefix, poll, read_events, run_cli

pytestmark = pytest.mark.timeout(60)

CRON_APP = "tests.apps.cron_app:app"


@pytest.fixture
async def client(nats_url: str, prefix: str) -> AsyncIterator[Aarq]:
    application = Aarq(nats_url, prefix=prefix)
    yield application
    await application.close()
    await delete_prefix(nats_url, application.names)


async def test_each_tick_runs_once_with_several_schedulers(
    procs: Procs, nats_url: str, events: Path
) -> None:
    workers = [
        procs.start("worker", CRON_APP, "-s", nats_url, "-c", "4"),
        procs.start(
            "worker",
            CRON_APP,
            "-s",
            nats_url,
            "-c",
            "4",
            "--rate-limit",
            "100",
            "--rate-interval",
            "1",
        ),
    ]
    standalone = procs.start("scheduler", CRON_APP, "-s", nats_url)
    quiet = procs.start("worker", CRON_APP, "-s", nats_url, "-c", "2", "--no-scheduler")
    schedulers = [*workers, standalone]
    for proc in schedulers:
        await proc.wait_log("scheduler started: delayed jobs on, repeatables second")
    await quiet.wait_log("started: queues=default")
    began = time.time()
    await poll(lambda: time.time() - began >= 10, 15, "10 seconds of ticks")
    for proc in [*schedulers, quiet]:
        proc.send(signal.SIGTERM)
    for proc in [*schedulers, quiet]:
        assert await proc.wait_exit() == 0, proc.log()

    runs = Counter(e["job"] for e in read_events(events) if e["event"] == "start")
    assert runs
    assert max(runs.values()) == 1, f"a tick ran twice: {runs.most_common(3)}"
    ticks = sorted(int(job.rsplit("-", 1)[1]) for job in runs)
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), f"a tick was lost: {ticks}"
    assert len(ticks) >= 9
    # Each tick was stored once, whichever scheduler published it first.
    fired = sum(proc.log().count("fired job cron-second-") for proc in schedulers)
    assert fired >= len(ticks)
    assert fired <= len(ticks) + 3  # ticks published as everything stopped never ran
    assert "scheduler started" not in quiet.log()
    assert "scheduler stopped" in standalone.log()


def test_schedules_lists_repeatables_and_next_fires() -> None:
    result = run_cli("schedules", "examples.cron_app:app", "--next", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TASK", "QUEUE", "SCHEDULE", "MISSED", "NEXT"]
    assert any(line.startswith("daily_report ") and "Europe/Paris" in line for line in lines)
    as_json = run_cli("schedules", "examples.cron_app:app", "--json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    by_name = {row["name"]: row for row in rows}
    assert by_name["daily_report"]["cron"] == "0 7 * * MON-FRI"
    assert by_name["daily_report"]["tz"] == "Europe/Paris"
    assert by_name["heartbeat"]["every"] == 30
    assert len(by_name["heartbeat"]["next"]) == 1
    empty = run_cli("schedules", "tests.apps.proc_app:app")
    assert empty.returncode == 0
    assert empty.stdout.startswith("no repeatable jobs")
    bad = run_cli("schedules", "tests.apps.nope:app")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: cannot import 'tests.apps.nope'")


@pytest.mark.skipif(server_version() < (2, 11, 0), reason="consumer pause needs 2.11+")
async def test_queue_pause_and_resume_commands(
    client: Aarq, nats_url: str, prefix: str, nc: NatsClient
) -> None:
    @client.task(queue="email")
    async def send(ctx: Context) -> None: ...

    broker = await client.connect()
    await broker.jobs.open_source("email", client.queue("email"))  # what a worker does first
    js = nc.jetstream()
    connection = ["-s", nats_url, "--prefix", prefix]

    result = await asyncio.to_thread(run_cli, "queue", "pause", "email", *connection)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "queue email paused until resumed (aioq queue resume email)\n"
    info = await js.consumer_info(client.names.jobs_stream, "email")
    assert info.paused

    result = await asyncio.to_thread(
        run_cli, "queue", "pause", "email", "--until", "23:59:59", *connection
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("queue email paused until ")
    assert await client.queue_paused_until("email") is not None

    result = await asyncio.to_thread(run_cli, "queue", "resume", "email", *connection)
    assert (result.returncode, result.stdout) == (0, "queue email resumed\n")
    assert not (await js.consumer_info(client.names.jobs_stream, "email")).paused

    missing = await asyncio.to_thread(run_cli, "queue", "pause", "nosuch", *connection)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: queue 'nosuch' has no consumer")
    bad = await asyncio.to_thread(
        run_cli, "queue", "pause", "email", "--until", "noon", *connection
    )
    assert bad.returncode == 2
    assert "neither HH:MM nor an ISO 8601" in bad.stderr
