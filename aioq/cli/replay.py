"""`aioq replay QUEUE --since ...`: run again the jobs that succeeded in a window of time."""

from __future__ import annotations

from typing import Annotated

import typer

from aioq.app import Aarq
from aioq.cli._command import APP, command, require_queue
from aioq.cli._moments import MOMENT_HELP, moment
from aioq.cli._options import JsonOption, QueueArgument, option
from aioq.cli._output import show_jobs

__all__ = ["replay"]


Since = Annotated[float, option("--since", parser=moment, metavar="TIME",
    help=f"Jobs that succeeded at or after TIME: {MOMENT_HELP}.",
)]  # fmt: skip
Until = Annotated[float | None, option("--until", parser=moment, metavar="TIME",
    help="Jobs that succeeded before TIME (same forms as --since).", default="now",
)]  # fmt: skip
TaskOption = Annotated[str | None, option("--task", help="Only jobs of this task.", metavar="TASK")]


@command
async def replay(
    queue: QueueArgument,
    since: Since,
    until: Until = None,
    task: TaskOption = None,
    as_json: JsonOption = False,
    app: Aarq = APP,
) -> None:
    """Enqueue again, as new jobs, the jobs of QUEUE that succeeded in a window of time.

    Only queues that keep a history (`app.queue(QUEUE, history=seconds)` in the workers'
    app) can be replayed, and only jobs within its retention.

    Exit status: 0 replayed (also when none matched); 1 unknown queue (or another error);
    2 --until not later than --since.
    """
    if until is not None and until <= since:
        raise typer.BadParameter("--until must be later than --since", param_hint="--until")
    jobs = await app.history.replay(queue, since=since, until=until, task=task)
    if not jobs:
        await require_queue(app, queue)
    empty = f"no kept job of queue {queue!r} succeeded in that window; nothing replayed"
    show_jobs(as_json, jobs, "replayed as job", empty)
