"""Burst mode: a worker that exits once its queues are done (``Worker(burst=True)``,
``aioq worker --burst``), and its rule for retries, delayed jobs, repeatables and pauses."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from nats.aio.client import Client as NatsClient

from aioq import Aarq, Context, Worker
from aioq.cli._loop import LoopChoice, loop_factory
from aioq.testing import harness
from aioq.wire import JobState
from aioq.worker.execute import Stats

from ..procs import APP_PATH, Procs, read_events, run_cli

pytestmark = pytest.mark.timeout(60)


async def run_burst(app: Aarq, timeout: float = 20.0, **options: Any) -> Worker:
    """Run a burst worker on `app` until it returns by itself (the test fails after `timeout`)."""
    await app.connect()  # the test's connection: the worker leaves it open
    queues = options.pop("queues", harness.TEST_WORKER_OPTIONS.queues)
    started = await harness.start_worker(app, queues, burst=True, **options)
    await started.wait_stopped(timeout)
    assert started.worker.burst_done
    return started.worker


async def held(app: Aarq, queue: str = "default") -> tuple[int, int]:
    return await (await app.connect()).held.counts(queue, time.time())


async def test_on_an_empty_queue_it_exits_at_once_without_waiting_for_future_ticks(
    app: Aarq,
) -> None:
    @app.task
    async def noop(ctx: Context) -> None:
        pass

    app.add_repeatable(noop, every=3600, name="hourly")  # next tick up to an hour away
    started = time.monotonic()
    worker = await run_burst(app)
    assert time.monotonic() - started < 10  # in practice well under a second
    assert worker.stats == Stats()
    assert worker.left_delayed == 0
    assert await (await app.connect()).jobs.backlog("default") == 0


async def test_on_a_backlog_it_exits_right_after_the_last_job(
    app: Aarq, nc: NatsClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aioq.worker")
    ran: list[str] = []

    @app.task
    async def work(ctx: Context, n: int) -> None:
        await asyncio.sleep(0.01 * (n % 4))
        ran.append(ctx.job_id)

    jobs = [await work.enqueue(n) for n in range(30)]
    worker = await run_burst(app, concurrency=4)
    assert sorted(ran) == sorted(job.id for job in jobs)  # every job, each exactly once
    assert worker.stats == Stats(processed=30)
    info = await nc.jetstream().consumer_info(app.names.jobs_stream, app.names.consumer("default"))
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    states = {(await job.status()).state for job in jobs}
    assert states == {JobState.SUCCEEDED}
    assert "burst done, its queues are empty: ran 30 jobs" in caplog.text


async def test_it_waits_for_a_retry_waiting_out_its_backoff(app: Aarq) -> None:
    attempts: list[int] = []

    @app.task(retries=2, backoff=0.5)
    async def flaky(ctx: Context) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    job = await flaky.enqueue()
    worker = await run_burst(app)
    assert attempts == [1, 2]
    assert worker.stats == Stats(processed=1, retried=1)
    assert await job.result(timeout=1) == "ok"


async def test_delayed_jobs_due_are_run_and_those_not_yet_due_are_left(
    app: Aarq, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aioq.worker")
    ran: list[str] = []

    @app.task
    async def mark(ctx: Context, name: str) -> None:
        ran.append(name)

    @app.task
    async def slow(ctx: Context) -> None:
        await asyncio.sleep(1.0)
        ran.append("slow")

    await mark.with_options(delay=0.2).enqueue("due-before-the-start")
    await asyncio.sleep(0.4)  # due now, but still held: no scheduler ran yet
    assert await held(app) == (1, 0)
    await slow.enqueue()
    await mark.with_options(delay=0.5).enqueue("due-while-busy")  # before `slow` ends
    later = await mark.with_options(delay=60).enqueue("not-yet-due")

    worker = await run_burst(app)
    assert sorted(ran) == ["due-before-the-start", "due-while-busy", "slow"]
    assert worker.left_delayed == 1
    assert await held(app) == (0, 1)  # left held for a later worker
    broker = await app.connect()
    assert await broker.held.find(later.id, "default") == "default"
    assert "left 1 delayed jobs that are not yet due" in caplog.text


async def test_without_its_scheduler_it_leaves_even_due_delayed_jobs(app: Aarq) -> None:
    ran: list[str] = []

    @app.task
    async def mark(ctx: Context, name: str) -> None:
        ran.append(name)

    await mark.with_options(delay=0.1).enqueue("due")
    await asyncio.sleep(0.3)
    worker = await run_burst(app, scheduler=False)
    assert ran == []
    assert worker.left_delayed == 0  # not looked at: a scheduler elsewhere releases them
    assert await held(app) == (1, 0)

    await run_burst(app)  # with its scheduler, a burst worker releases and runs it
    assert ran == ["due"]
    assert await held(app) == (0, 0)


async def test_it_runs_the_repeatable_ticks_missed_before_its_start(app: Aarq) -> None:
    ran: list[str] = []

    @app.task
    async def tick(ctx: Context) -> None:
        ran.append(ctx.job_id)

    app.add_repeatable(tick, every=3600, name="hourly")
    latest = math.floor(time.time() / 3600) * 3600
    control = (await app.connect()).control
    await control.record_tick("hourly", latest - 3600)  # the latest tick was missed

    await run_burst(app)
    assert ran == [f"cron-hourly-{latest}"]


async def test_it_does_not_wait_for_a_paused_queue(app: Aarq) -> None:
    ran: list[str] = []

    @app.task
    async def mark(ctx: Context, name: str) -> None:
        ran.append(name)

    await run_burst(app)  # creates the queue's consumer, which a pause needs
    await mark.enqueue("queued")
    await app.pause_queue("default")
    await run_burst(app)
    assert ran == []
    assert await (await app.connect()).jobs.backlog("default") == 1

    await app.resume_queue("default")
    await run_burst(app)
    assert ran == ["queued"]


async def test_the_harness_waits_for_a_burst_worker_to_stop(app: Aarq) -> None:
    @app.task
    async def nap(ctx: Context, seconds: float) -> None:
        await asyncio.sleep(seconds)

    await app.connect()
    running = await harness.start_worker(app, "default", burst=True)  # may be done already
    await running.wait_stopped(10)
    assert running.worker.burst_done

    await nap.enqueue(1.0)
    running = await harness.start_worker(app, "default", burst=True)
    with pytest.raises(TimeoutError, match=r"\{'default': 1\}, 1 running in it"):
        await running.wait_stopped(0.3)
    await running.wait_stopped(10)
    assert running.stats == Stats(processed=1)


async def test_cli_burst_worker_exits_0_after_running_the_backlog(
    client: Aarq, procs: Procs, nats_url: str, events: Path
) -> None:
    jobs = [await client.enqueue("echo", n) for n in range(5)]
    proc = procs.start("worker", APP_PATH, "-s", nats_url, "--burst", "--heartbeat-interval", "1")
    assert await proc.wait_exit(timeout=30) == 0, proc.log()
    started = sorted(e["job"] for e in read_events(events) if e["event"] == "start")
    assert started == sorted(job.id for job in jobs)
    assert "burst done, its queues are empty: ran 5 jobs" in proc.log()
    assert await (await client.connect()).jobs.backlog("default") == 0


def test_cli_help_lists_burst() -> None:
    result = run_cli("worker", "--help")
    assert result.returncode == 0
    assert "--burst" in result.stdout


async def test_a_stop_after_a_burst_ended_is_no_second_stop_request(
    app: Aarq, caplog: pytest.LogCaptureFixture
) -> None:
    worker = await run_burst(app)
    with caplog.at_level(logging.INFO, logger="aioq.worker"):
        worker.stop()  # e.g. a fixture's teardown: the worker stopped by itself already
    assert "second stop request" not in caplog.text


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_cli_worker_runs_on_the_loop_asked_for(
    client: Aarq, procs: Procs, nats_url: str, events: Path, loop: str
) -> None:
    jobs = [await client.enqueue("echo", n) for n in range(3)]
    proc = procs.start(
        "worker", APP_PATH, "-s", nats_url, "--burst", "--loop", loop, "--log-level", "debug"
    )
    assert await proc.wait_exit(timeout=30) == 0, proc.log()
    assert f"event loop: {loop}" in proc.log()
    started = sorted(e["job"] for e in read_events(events) if e["event"] == "start")
    assert started == sorted(job.id for job in jobs)


def test_auto_runs_uvloop_when_installed_and_asyncios_loop_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert loop_factory(LoopChoice.auto)[0] == "uvloop"  # installed with the dev extra
    assert loop_factory(LoopChoice.uvloop)[0] == "uvloop"
    assert loop_factory(LoopChoice.asyncio) == ("asyncio", None)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert loop_factory(LoopChoice.auto) == ("asyncio", None)
    with pytest.raises(typer.BadParameter, match=r"pip install 'aioq-nats\[uvloop\]'"):
        loop_factory(LoopChoice.uvloop)
