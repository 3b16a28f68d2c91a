"""`aioq scheduler` (run the scheduler alone) and `aioq schedules` (list repeatable jobs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Annotated, Any

import typer

from aioq.app import Aarq
from aioq.cli._common import (
    Connection,
    CredsOption,
    JsonOption,
    PasswordOption,
    PrefixOption,
    ServerOption,
    TokenOption,
    UserOption,
    echo_json,
    fail_on_errors,
)
from aioq.cli._loader import load_app
from aioq.cli._logging import LogLevel, configure_logging
from aioq.cli._output import table
from aioq.cron import CronSchedule, EverySchedule
from aioq.repeatable import Repeatable
from aioq.scheduler import Scheduler

__all__ = ["scheduler", "schedules"]

log = logging.getLogger("aioq.scheduler")

AppPath = Annotated[
    str,
    typer.Argument(
        help="The app, as module:attribute (e.g. myapp.tasks:app).",
        metavar="APP_PATH",
        show_default=False,
    ),
]


def scheduler(
    app_path: AppPath,
    server: ServerOption = None,
    prefix: PrefixOption = None,
    creds: CredsOption = None,
    token: TokenOption = None,
    user: UserOption = None,
    password: PasswordOption = None,
    repeatable: Annotated[
        list[str] | None,
        typer.Option(
            "--repeatable",
            "-r",
            help=r"Fire only this repeatable; repeat for several. \[default: all of the app's]",
            metavar="NAME",
        ),
    ] = None,
    delayed: Annotated[
        bool,
        typer.Option("--delayed/--no-delayed", help="Move delayed jobs to their queues when due."),
    ] = True,
    scan_interval: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Polling period: how long a lost wake-up of a delayed job or a wall-clock "
            "jump can go unnoticed.",
            metavar="SECONDS",
        ),
    ] = 1.0,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            case_sensitive=False,
            help="Log level: debug, info, warning or error.",
            metavar="LEVEL",
        ),
    ] = LogLevel.info,
) -> None:
    """Run a scheduler alone (delayed and repeatable jobs, no job execution) until SIGTERM.

    Any number may run, beside workers with their own scheduler or with --no-scheduler:
    each delayed job and each tick of a repeatable is enqueued once.
    """
    configure_logging(log_level)
    with fail_on_errors():
        app = Connection(server, prefix, creds, token, user, password).app(app_path)
        runner = Scheduler(
            app,
            repeatables=repeatable or None,
            scan_interval=scan_interval,
            delayed=delayed,
        )
        asyncio.run(_run(app, runner))


async def _run(app: Aarq, runner: Scheduler) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(runner.run())
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
        # Cancelled again if need be: on Python 3.11 a cancellation that arrives as a NATS
        # request completes can be lost inside nats-py.
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        with contextlib.suppress(asyncio.CancelledError):
            task.result()
    finally:
        stopping.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
        await app.close()
    log.info(
        "scheduler stopped: released %d delayed jobs, fired %d ticks", runner.released, runner.fired
    )


def schedules(
    app_path: AppPath,
    count: Annotated[
        int,
        typer.Option("--next", "-n", min=1, max=100, help="Fire times shown per repeatable."),
    ] = 1,
    json: JsonOption = False,
) -> None:
    """List the app's repeatable jobs with their next fire times (no server needed)."""
    with fail_on_errors():
        app = load_app(app_path)
        now = time.time()
        rows = [_describe(r, count, now) for r in app.repeatables.values()]
        if json:
            echo_json(rows)
            return
        if not rows:
            typer.echo(f"no repeatable jobs in {app_path}")
            return
        typer.echo(
            table(
                ["NAME", "TASK", "QUEUE", "SCHEDULE", "MISSED", "NEXT"],
                [
                    [
                        r["name"],
                        r["task"],
                        r["queue"],
                        r["schedule"],
                        r["missed"],
                        ", ".join(r["next"]),
                    ]
                    for r in rows
                ],
            )
        )


def _describe(repeatable: Repeatable, count: int, now: float) -> dict[str, Any]:
    schedule = repeatable.schedule
    row: dict[str, Any] = {
        "name": repeatable.name,
        "task": repeatable.task.name,
        "queue": repeatable.queue,
        "schedule": schedule.describe(),
        "missed": repeatable.missed.value,
        "next": [t.isoformat() for t in repeatable.next_fires(count, now)],
    }
    if isinstance(schedule, EverySchedule):
        row["every"] = schedule.seconds
    elif isinstance(schedule, CronSchedule):
        row["cron"] = schedule.expression
        row["tz"] = schedule.tz_name
    return row
