"""`aioq worker`: run a worker process."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import Annotated, Final

from aioq.cli._command import CONNECTION_OPTIONS, Connection, command
from aioq.cli._loop import LoopChoice, loop_factory, run_on
from aioq.cli._options import LOGGING, AppArgument, Logging, option
from aioq.options import WorkerOptions
from aioq.worker import Worker
from aioq.worker.threads import exit_despite_threads

__all__ = ["worker"]

log = logging.getLogger("aioq.worker")

#: The settings of ``aioq worker`` not given on the command line.
DEFAULTS: Final = WorkerOptions()


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else value


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """The worker settings given after the connection options, named as in `WorkerOptions`."""

    shutdown_grace: Annotated[float, option(min=0, metavar="SECONDS",
        help="Seconds running jobs get to finish on SIGTERM before they are requeued.",
    )] = _seconds(DEFAULTS.shutdown_grace)  # fmt: skip
    heartbeat_interval: Annotated[float, option(min=0.05, metavar="SECONDS",
        help="Seconds between heartbeats in the workers KV bucket.",
    )] = _seconds(DEFAULTS.heartbeat_interval)  # fmt: skip
    rate_limit: Annotated[int | None, option(min=0, metavar="N", default="no limit",
        help="Most job starts per --rate-interval for this worker, bursts included (0 starts none)."
    )] = DEFAULTS.rate_limit  # fmt: skip
    rate_interval: Annotated[float, option(min=0.001, metavar="SECONDS",
        help="Seconds of the --rate-limit window.",
    )] = _seconds(DEFAULTS.rate_interval)  # fmt: skip
    scheduler: Annotated[bool, option("--scheduler/--no-scheduler",
        help="Run the scheduler (delayed and repeatable jobs) in this worker.",
    )] = DEFAULTS.scheduler  # fmt: skip
    scan_interval: Annotated[float, option(min=0.01, metavar="SECONDS",
        help="The scheduler's polling period: how long a lost wake-up of a delayed job or a "
        "wall-clock jump can go unnoticed.",
    )] = _seconds(DEFAULTS.scan_interval)  # fmt: skip
    burst: Annotated[bool, option("--burst",
        help="Exit with status 0 once the queues are empty and no job runs (batch and "
        "cron-driven runs). Retries and delayed jobs already due are waited for; delayed "
        "jobs not yet due are left for a later worker.",
    )] = DEFAULTS.burst  # fmt: skip
    metrics_port: Annotated[int | None, option(min=0, max=65535, metavar="PORT",
        default="no metrics",
        help="Serve Prometheus metrics on http://HOST:PORT/metrics; each worker on a host "
        "needs its own port (0 picks a free one and logs it).",
    )] = DEFAULTS.metrics_port  # fmt: skip
    metrics_host: Annotated[str, option(metavar="HOST",
        help="Address the metrics are served on (0.0.0.0 for a scraper on another host).",
    )] = DEFAULTS.metrics_host  # fmt: skip


SETTINGS: Final = Settings()
QueuesOption = Annotated[list[str] | None, option("--queue", "-q", metavar="QUEUE",
    help="Queue to pull from; repeat for several.", default="default",
)]  # fmt: skip
ConcurrencyOption = Annotated[int, option("--concurrency", "-c", min=1, metavar="N",
    help="Jobs run at once, over all the queues.",
)]  # fmt: skip
LoopOption = Annotated[
    LoopChoice,
    option(
        "--loop",
        case_sensitive=False,
        metavar="LOOP",
        help="Event loop: uvloop (the aioq-nats[uvloop] extra), asyncio, or auto (uvloop when "
        "installed, else asyncio).",
    ),
]


@command
def worker(
    app_path: AppArgument,
    queue: QueuesOption = None,
    concurrency: ConcurrencyOption = DEFAULTS.concurrency,
    logs: Logging = LOGGING,
    loop: LoopOption = LoopChoice.auto,
    connection: Connection = CONNECTION_OPTIONS,
    settings: Settings = SETTINGS,
) -> None:
    """Run a worker: pull jobs from the queues and run them until SIGTERM or SIGINT.

    With --burst it exits by itself once its queues are empty.
    """
    logs.configure()
    loop_name, factory = loop_factory(loop)
    app = dataclasses.replace(connection, servers=connection.servers or None).app()
    options = DEFAULTS.replace(concurrency=concurrency, **dataclasses.asdict(settings))
    if queue:
        options = options.replace(queues=queue)
    log.debug("event loop: %s", loop_name)
    run_on(factory, _run(Worker(app, options=options)))


async def _run(runner: Worker) -> None:
    await runner.run()
    if runner.cancelled_at_stop:
        exit_despite_threads(runner.cancelled_at_stop)
