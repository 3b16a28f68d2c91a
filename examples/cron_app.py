"""Scheduling: repeatable jobs (cron and interval), delayed jobs, and a runner from code.

With a server running (``aioq server``)::

    aioq schedules examples.cron_app:app            # the repeatables and their next fire times
    aioq worker examples.cron_app:app -q default -q email   # runs jobs and the scheduler
    aioq scheduler examples.cron_app:app            # or a scheduler on its own

Or everything at once, for a few seconds, with a local nats-server::

    .venv/bin/python examples/cron_app.py --seconds 6
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioq import Aarq, Context, run_worker
from aioq.embedded import EmbeddedNats

app = Aarq("nats://127.0.0.1:4222", prefix="cron-example")


@app.cron("0 7 * * MON-FRI", tz="Europe/Paris")
async def daily_report(ctx: Context) -> None:
    """Every weekday at 07:00 Paris time; the job id names the tick (cron-daily_report-<ts>)."""
    print(f"daily report for tick {ctx.job_id}")


@app.task
async def heartbeat(ctx: Context, source: str) -> None:
    print(f"heartbeat from {source}: {ctx.job_id}")


# Every 30 seconds, on :00 and :30 of each minute, whichever schedulers run.
app.add_repeatable(heartbeat, every=timedelta(seconds=30), args=["every-30s"])
# Every 2 seconds; after an outage, every missed tick is fired (up to 100), oldest first.
app.add_repeatable(heartbeat, every=2, args=["every-2s"], name="fast", missed="all")


@app.task(queue="email")
async def send_reminder(ctx: Context, to: str, due: float) -> None:
    late = time.time() - due
    print(f"reminder to {to}, {late * 1000:.1f} ms after its time")


# At most 5 reminder emails start per second, over all workers of the queue together.
app.queue("email", rate_limit=5, rate_interval=1.0)


async def demo(seconds: float) -> None:
    backlog_checks = 0

    async def check_backlog() -> None:
        # A scanner: a periodic coroutine that lives and dies with the worker.
        nonlocal backlog_checks
        backlog_checks += 1

    runner = asyncio.create_task(
        run_worker(app, queues=["default", "email"], scanners=[(check_backlog, 1.0)])
    )
    for i in range(3):
        due = time.time() + 1 + i
        await send_reminder.with_options(delay=1 + i).enqueue(f"user{i}@example.com", due)
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    await send_reminder.with_options(run_at=at).enqueue("boss@example.com", at.timestamp())
    await asyncio.sleep(seconds)
    runner.cancel()  # a graceful stop: running jobs finish first
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    print(f"scanner ran {backlog_checks} times; worker stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to run")
    options = parser.parse_args()
    with EmbeddedNats() as server:
        app.use_servers(server.url)
        asyncio.run(demo(options.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
