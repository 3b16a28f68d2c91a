"""Group-limit figures, each on a fresh local nats-server, beside the hand-written ceiling.

    .venv/bin/python benchmarks/bench_groups.py [--jobs 5000] [--flood 3000]

Throughput rows (no-op jobs, one worker, concurrency 100, jobs enqueued before it starts):

* ``nats-py ceiling``: a raw pull consumer that acks each message (the fastest possible);
* ``aioq, no group limits``: the hot path;
* ``aioq, group limits set, jobs of no group``: what the limits cost jobs that use none;
* ``aioq, jobs of a limited group``: every start takes a place (max_running far above the
  load, so none is put back): two KV round trips to start, one to end.

Flood row: ``--flood`` jobs of group ``flood`` (max_running 2, 10 ms each) are queued ahead
of 100 jobs of group ``calm``; the figure is how long the calm jobs take to all finish while
the flood is put back.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioq import Aarq, Context, Worker
from aioq.embedded import EmbeddedNats

CONCURRENCY = 100


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - polls counters the tasks update
        await asyncio.sleep(0.005)


async def ceiling(url: str, count: int) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="GCEIL", subjects=["gceil"], retention=RetentionPolicy.WORK_QUEUE)
    )
    for _ in range(count):
        await js.publish("gceil", b"n")
    sub = await js.pull_subscribe(
        "gceil", "gceil", config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
    )
    done = 0
    start = time.perf_counter()
    while done < count:
        for msg in await sub.fetch(CONCURRENCY, timeout=5):
            await msg.ack()
            done += 1
    elapsed = time.perf_counter() - start
    await nc.close()
    return count / elapsed


async def aioq_rate(url: str, count: int, limits: bool, group: str | None) -> float:
    app = Aarq(url, prefix="benchgroups")
    done = 0

    @app.task
    async def noop(ctx: Context) -> None:
        nonlocal done
        done += 1

    if limits:
        app.group_limit("other", max_running=1)
        app.group_limit("wide", max_running=100_000)
    call = noop.with_options(group=group) if group else noop
    for start in range(0, count, 1000):
        await app.enqueue_many(call.prepare() for _ in range(min(1000, count - start)))
    worker = Worker(app, concurrency=CONCURRENCY, handle_signals=False)
    began = time.perf_counter()
    running = asyncio.create_task(worker.run())
    await until(lambda: done >= count)
    elapsed = time.perf_counter() - began
    worker.stop()
    await running
    await app.close()
    return count / elapsed


async def flood(url: str, flooded: int) -> tuple[float, int]:
    app = Aarq(url, prefix="benchflood")
    finished = {"flood": 0, "calm": 0}

    @app.task(retries=0)
    async def work(ctx: Context, group: str) -> None:
        if group == "flood":
            await asyncio.sleep(0.01)
        finished[group] += 1

    app.group_limit("flood", max_running=2, recheck=1.0)
    for start in range(0, flooded, 1000):
        batch = min(1000, flooded - start)
        await app.enqueue_many(
            work.with_options(group="flood").prepare("flood") for _ in range(batch)
        )
    await app.enqueue_many(work.with_options(group="calm").prepare("calm") for _ in range(100))
    worker = Worker(app, concurrency=CONCURRENCY, handle_signals=False)
    began = time.perf_counter()
    running = asyncio.create_task(worker.run())
    await until(lambda: finished["calm"] >= 100)
    elapsed = time.perf_counter() - began
    worker.stop()
    await running
    await app.close()
    return elapsed, finished["flood"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--flood", type=int, default=3000)
    args = parser.parse_args()
    rows: list[tuple[str, float]] = []
    with EmbeddedNats() as server:
        rows.append(("nats-py ceiling", await ceiling(server.url, args.jobs)))
    cases = [
        ("aioq, no group limits", False, None),
        ("aioq, group limits set, jobs of no group", True, None),
        ("aioq, jobs of a limited group", True, "wide"),
    ]
    for name, limits, group in cases:
        with EmbeddedNats() as server:
            rows.append((name, await aioq_rate(server.url, args.jobs, limits, group)))
    print(f"| case ({args.jobs} no-op jobs, concurrency {CONCURRENCY}) | jobs/s |")
    print("|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")
    with EmbeddedNats() as server:
        elapsed, flooded_done = await flood(server.url, args.flood)
    print(
        f"\nflood: 100 calm jobs queued behind {args.flood} flooded ones (max_running 2) all "
        f"finished in {elapsed:.2f}s; {flooded_done} flooded jobs had run meanwhile"
    )


if __name__ == "__main__":
    asyncio.run(main())
