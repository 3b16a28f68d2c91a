"""`aioq worker`: run a worker process."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import threading
import time
from datetime import timedelta
from typing import Annotated, Final

import typer

from aioq.cli._command import CONNECTION_OPTIONS, Connection, command
from aioq.cli._logging import LogFormat, LogLevel, configure_logging
from aioq.cli._options import (
    LogFormatOption,
    LogLevelOption,
    MetricsHostOption,
    MetricsPortOption,
)
from aioq.options import WorkerOptions
from aioq.worker import Worker

__all__ = ["worker"]

log = logging.getLogger("aioq.worker")

# How long a worker that cancelled jobs at its stop waits for their threads before exiting.
EXIT_WAIT_S: Final = 1.0
#: The settings of ``aioq worker`` not given on the command line.
DEFAULTS: Final = WorkerOptions()


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else value


@command
def worker(
    app_path: Annotated[
        str,
        typer.Argument(
            help="The app to run, as module:attribute (e.g. myapp.tasks:app).",
            metavar="APP_PATH",
            show_default=False,
        ),
    ],
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            help=r"Queue to pull from; repeat for several. \[default: default]",
            metavar="QUEUE",
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", min=1, help="Jobs run at once, over all the queues.", metavar="N"
        ),
    ] = DEFAULTS.concurrency,
    log_level: LogLevelOption = LogLevel.info,
    log_format: LogFormatOption = LogFormat.text,
    metrics_port: MetricsPortOption = DEFAULTS.metrics_port,
    metrics_host: MetricsHostOption = DEFAULTS.metrics_host,
    connection: Connection = CONNECTION_OPTIONS,
    shutdown_grace: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds running jobs get to finish on SIGTERM before they are requeued.",
            metavar="SECONDS",
        ),
    ] = _seconds(DEFAULTS.shutdown_grace),
    heartbeat_interval: Annotated[
        float,
        typer.Option(
            min=0.05,
            help="Seconds between heartbeats in the workers KV bucket.",
            metavar="SECONDS",
        ),
    ] = _seconds(DEFAULTS.heartbeat_interval),
    rate_limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Most job starts per --rate-interval for this worker, bursts included "
            r"(0 starts none). \[default: no limit]",
            metavar="N",
            show_default=False,
        ),
    ] = DEFAULTS.rate_limit,
    rate_interval: Annotated[
        float,
        typer.Option(min=0.001, help="Seconds of the --rate-limit window.", metavar="SECONDS"),
    ] = _seconds(DEFAULTS.rate_interval),
    scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Run the scheduler (delayed and repeatable jobs) in this worker.",
        ),
    ] = DEFAULTS.scheduler,
    scan_interval: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="The scheduler's polling period: how long a lost wake-up of a delayed job or "
            "a wall-clock jump can go unnoticed.",
            metavar="SECONDS",
        ),
    ] = _seconds(DEFAULTS.scan_interval),
    burst: Annotated[
        bool,
        typer.Option(
            "--burst",
            help="Exit with status 0 once the queues are empty and no job runs (batch and "
            "cron-driven runs). Retries and delayed jobs already due are waited for; delayed "
            "jobs not yet due are left for a later worker.",
        ),
    ] = DEFAULTS.burst,
) -> None:
    """Run a worker: pull jobs from the queues and run them until SIGTERM or SIGINT.

    With --burst it exits by itself once its queues are empty.
    """
    configure_logging(log_level, log_format)
    app = dataclasses.replace(connection, server=connection.server or None).app(app_path)
    options = DEFAULTS.replace(
        concurrency=concurrency,
        shutdown_grace=shutdown_grace,
        heartbeat_interval=heartbeat_interval,
        rate_limit=rate_limit,
        rate_interval=rate_interval,
        scheduler=scheduler,
        scan_interval=scan_interval,
        burst=burst,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    if queue:
        options = options.replace(queues=queue)
    asyncio.run(_run(Worker(app, options=options)))


async def _run(runner: Worker) -> None:
    await runner.run()
    if runner.cancelled_at_stop:
        _exit_if_stuck(runner.cancelled_at_stop)


def _exit_if_stuck(cancelled: int) -> None:
    """Exit with 0 in `EXIT_WAIT_S` if the interpreter is still waiting for threads then.

    Jobs cancelled at the stop are back in their queue and the connection is closed, but the
    thread of a plain-function job cannot be interrupted, and Python waits for it on exit
    (for ever, if the job never ends). The watchdog is a daemon thread, so a normal exit
    ends it.
    """

    def watchdog() -> None:
        time.sleep(EXIT_WAIT_S)
        main = threading.main_thread()
        busy = [t.name for t in threading.enumerate() if not t.daemon and t is not main]
        log.warning(
            "exiting without waiting for threads still running (%s): the %d cancelled jobs were "
            "returned to their queue",
            ", ".join(busy) or "none",
            cancelled,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    threading.Thread(target=watchdog, name="aioq-exit-watchdog", daemon=True).start()
