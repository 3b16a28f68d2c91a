"""`aioq scheduler` (run the scheduler alone) and `aioq schedules` (list repeatable jobs)."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from aioq.app import Aarq
from aioq.cli._command import APP, command
from aioq.cli._loader import load_app
from aioq.cli._options import LOGGING, AppArgument, JsonOption, Logging, option
from aioq.cli._output import show, table
from aioq.cron import CronSchedule, EverySchedule
from aioq.repeatable import Repeatable
from aioq.scheduler import Scheduler
from aioq.worker.signals import until_stopped

__all__ = ["scheduler", "schedules"]

log = logging.getLogger("aioq.scheduler")


RepeatableOption = Annotated[list[str] | None, option("--repeatable", "-r", metavar="NAME",
    help="Fire only this repeatable; repeat for several.", default="all of the app's",
)]  # fmt: skip
DelayedOption = Annotated[bool, option("--delayed/--no-delayed",
    help="Move delayed jobs to their queues when due.",
)]  # fmt: skip
ScanIntervalOption = Annotated[float, option(min=0.01, metavar="SECONDS",
    help="Polling period: how long a lost wake-up of a delayed job or a wall-clock jump can go "
    "unnoticed.",
)]  # fmt: skip
NextOption = Annotated[int, option("--next", "-n", min=1, max=100,
    help="Fire times shown per repeatable.",
)]  # fmt: skip


@command
async def scheduler(
    app_path: AppArgument,
    app: Aarq = APP,
    repeatable: RepeatableOption = None,
    delayed: DelayedOption = True,
    scan_interval: ScanIntervalOption = 1.0,
    logs: Logging = LOGGING,
) -> None:
    """Run a scheduler alone (delayed and repeatable jobs, no job execution) until SIGTERM.

    Any number may run, beside workers with their own scheduler or with --no-scheduler:
    each delayed job and each tick of a repeatable is enqueued once.
    """
    logs.configure()
    runner = Scheduler(
        app, repeatables=repeatable or None, scan_interval=scan_interval, delayed=delayed
    )
    await until_stopped(runner.run())
    log.info(
        "scheduler stopped: released %d delayed jobs, fired %d ticks", runner.released, runner.fired
    )


@command
def schedules(app_path: AppArgument, count: NextOption = 1, json: JsonOption = False) -> None:
    """List the app's repeatable jobs with their next fire times (no server needed)."""
    app = load_app(app_path)
    now = time.time()
    rows = [_describe(r, count, now) for r in app.repeatables.values()]
    headers = ["NAME", "TASK", "QUEUE", "SCHEDULE", "MISSED", "NEXT"]
    keys = ["name", "task", "queue", "schedule", "missed"]
    lines = [[r[k] for k in keys] + [", ".join(r["next"])] for r in rows]
    show(json, rows, lambda: table(headers, lines), f"no repeatable jobs in {app_path}")


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
