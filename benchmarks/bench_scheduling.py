"""Scheduling figures: delayed-job lateness (aioq's path beside native message schedules) and
rate-limit accuracy, each on a fresh local nats-server.

    .venv/bin/python benchmarks/bench_scheduling.py [--jobs 500] [--spread 5]

Lateness is the job's start (or receipt) minus its due time; negative would be early. Rows:

* ``aioq delayed jobs``: end to end through aioq, two workers (so two schedulers) running;
* ``nak path, raw``: what aioq's scheduler does (held message, ``nak(delay=time left)``, publish
  when due), timed at the scheduler, without aioq around it;
* ``native @at schedules, raw``: ``Nats-Schedule: @at <time>`` messages (server 2.12+), timed at
  a pull consumer on the target subject; skipped on older servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioq import Aarq, Context, Worker
from aioq.embedded import EmbeddedNats, server_version


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - polls counters the tasks update
        await asyncio.sleep(0.01)


def summary(name: str, lateness: list[float]) -> str:
    ordered = sorted(lateness)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return (
        f"| {name} | {len(ordered)} | {statistics.median(ordered) * 1000:.1f} | "
        f"{p99 * 1000:.1f} | {ordered[-1] * 1000:.1f} | {sum(1 for v in ordered if v < 0)} |"
    )


def due_times(count: int, spread: float) -> list[float]:
    start = time.time() + 1.0
    return [start + spread * i / count for i in range(count)]


async def aioq_delayed(url: str, count: int, spread: float) -> list[float]:
    app = Aarq(url, prefix="benchdelay")
    lateness: list[float] = []

    @app.task
    async def due_at(ctx: Context, due: float) -> None:
        lateness.append(time.time() - due)

    workers = [Worker(app, concurrency=100, handle_signals=False) for _ in range(2)]
    running = [asyncio.create_task(w.run()) for w in workers]
    await until(lambda: all(w.ready for w in workers))
    jobs = [
        due_at.with_options(run_at=datetime.fromtimestamp(due, UTC)).prepare(due)
        for due in due_times(count, spread)
    ]
    await app.enqueue_many(jobs)
    await until(lambda: len(lateness) >= count)
    for worker in workers:
        worker.stop()
    await asyncio.gather(*running)
    return lateness


async def raw_path(url: str, count: int, spread: float, native: bool) -> list[float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    stream = "RAWNATIVE" if native else "RAWNAK"
    subject = stream.lower()
    await js.add_stream(
        StreamConfig(
            name=stream,
            subjects=[f"{subject}.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            allow_msg_schedules=native or None,
        )
    )
    filter_subject = f"{subject}.jobs.>" if native else f"{subject}.sched.>"
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name="c",
            filter_subject=filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            max_ack_pending=-1,
            max_deliver=-1,
        ),
    )
    sub = await js.pull_subscribe_bind("c", stream=stream)
    for i, due in enumerate(due_times(count, spread)):
        headers = {"Due": repr(due)}
        if native:
            stamp = datetime.fromtimestamp(due, UTC).isoformat(timespec="milliseconds")
            headers["Nats-Schedule"] = "@at " + stamp.replace("+00:00", "Z")
            headers["Nats-Schedule-Target"] = f"{subject}.jobs.{i}"
        await js.publish(f"{subject}.sched.{i}", b"{}", headers=headers)
    lateness: list[float] = []
    deadline = time.time() + spread + 30
    while len(lateness) < count and time.time() < deadline:
        try:
            msgs = await sub.fetch(256, timeout=1)
        except TimeoutError:
            continue
        for msg in msgs:
            due = float((msg.headers or {})["Due"])
            left = due - time.time()
            if not native and left > 0.002:
                await msg.nak(delay=left)
                continue
            lateness.append(-left)
            await msg.ack()
    await nc.close()
    return lateness


async def rate_limit(url: str, limit: int, count: int) -> tuple[float, int]:
    app = Aarq(url, prefix="benchrate")
    starts: list[float] = []

    @app.task
    async def noop(ctx: Context) -> None:
        starts.append(time.monotonic())

    await app.enqueue_many(noop.prepare() for _ in range(count))
    worker = Worker(app, concurrency=200, rate_limit=limit, handle_signals=False, scheduler=False)
    running = asyncio.create_task(worker.run())
    await until(lambda: len(starts) >= count)
    worker.stop()
    await running
    starts.sort()
    most, j = 0, 0
    for i, start in enumerate(starts):
        while j < len(starts) and starts[j] < start + 1.0:
            j += 1
        most = max(most, j - i)
    return (count - limit) / (starts[-1] - starts[0]), most


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--spread", type=float, default=5.0, help="seconds the due times span")
    parser.add_argument("--rate", type=int, default=100, help="rate limit, starts per second")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    version = server_version()
    rows: dict[str, list[float]] = {}
    with EmbeddedNats() as server:
        rows["aioq delayed jobs"] = await aioq_delayed(server.url, args.jobs, args.spread)
    with EmbeddedNats() as server:
        rows["nak path, raw"] = await raw_path(server.url, args.jobs, args.spread, native=False)
    if version >= (2, 12, 0):
        with EmbeddedNats() as server:
            rows["native @at schedules, raw"] = await raw_path(
                server.url, args.jobs, args.spread, native=True
            )
    with EmbeddedNats() as server:
        measured, most = await rate_limit(server.url, args.rate, args.rate * 10)
    if args.json:
        print(json.dumps({name: sorted(values) for name, values in rows.items()}))
        return
    print(f"nats-server {'.'.join(map(str, version))}, {args.jobs} jobs due over {args.spread}s")
    print("| path | jobs | p50 ms | p99 ms | max ms | early |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in rows.items():
        print(summary(name, values))
    print(
        f"rate limit {args.rate}/s over {args.rate * 10} jobs: {measured:.1f}/s after the first "
        f"burst, at most {most} starts in any 1 s window"
    )


if __name__ == "__main__":
    asyncio.run(main())
