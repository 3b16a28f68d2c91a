"""What a subject per stored job costs nats-server, against one subject per queue.

Raw nats-py on a fresh local nats-server per layout, work-queue streams as aioq uses them:

- ``shared``: every job on one subject, the consumer filtered on it (aioq today: the job
  is found by id through its "queued" record);
- ``per-job, filtered``: a subject per job (``jobs.q.<id>``) in a stream shared by
  queues, the consumer filtered on ``jobs.q.>``;
- ``per-job, own stream``: a subject per job in a stream of the queue's own, the consumer
  unfiltered: the layout in which the job message itself could be its queued state,
  found by id with a direct get of its subject.

For each: publish rate (pipelined), server CPU per 10,000 publishes, server RSS grown per
100,000 stored jobs, the time to find one stored job by id (by subject), then a drain
(fetch 100, ack; at most --drain-seconds) with its rate and server CPU per 10,000 jobs.

    .venv/bin/python benchmarks/bench_subjects.py [-n 100000] [--drain-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import infra

MB = 1024 * 1024
LAYOUTS = ("shared", "per-job, filtered", "per-job, own stream")


def _layout(name: str) -> tuple[list[str], str | None, str]:
    """Stream subjects, consumer filter, and the subject format of job `{i}`."""
    if name == "shared":
        return ["jobs.>"], "jobs.q", "jobs.q"
    if name == "per-job, filtered":
        return ["jobs.>"], "jobs.q.>", "jobs.q.{i}"
    return ["jobs.q.>"], None, "jobs.q.{i}"


async def measure(name: str, n: int, drain_s: float) -> dict[str, float]:
    server = infra.NatsServer.start()
    pid = server.proc.pid
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        subjects, filt, fmt = _layout(name)
        await js.add_stream(
            StreamConfig(
                name="JOBS",
                subjects=subjects,
                retention=RetentionPolicy.WORK_QUEUE,
                allow_direct=True,
            )
        )
        rss0, cpu0, t0 = (
            infra.rss_bytes(pid) or 0,
            infra.cpu_seconds(pid) or 0.0,
            time.perf_counter(),
        )
        for start in range(0, n, 10_000):
            futures = [
                await js.publish_async(fmt.format(i=i), b"x" * 100, headers={"Nats-Msg-Id": f"{i}"})
                for i in range(start, min(n, start + 10_000))
            ]
            await asyncio.gather(*futures)
        out = {"publish/s": n / (time.perf_counter() - t0)}
        out["server CPU s/10k publishes"] = ((infra.cpu_seconds(pid) or 0.0) - cpu0) / n * 1e4
        out["server RSS MB/100k stored"] = ((infra.rss_bytes(pid) or 0) - rss0) / MB / n * 1e5
        if fmt != "jobs.q":
            t0 = time.perf_counter()
            for i in range(0, n, max(1, n // 200)):
                await js.get_msg("JOBS", subject=fmt.format(i=i), direct=True)
            out["find by id ms"] = (time.perf_counter() - t0) / 200 * 1e3
        await js.add_consumer(
            "JOBS",
            ConsumerConfig(durable_name="w", ack_policy=AckPolicy.EXPLICIT, filter_subject=filt),
        )
        psub = await js.pull_subscribe_bind("w", stream="JOBS")
        cpu0, t0, done = infra.cpu_seconds(pid) or 0.0, time.perf_counter(), 0
        while done < n and time.perf_counter() - t0 < drain_s:
            for msg in await psub.fetch(100, timeout=5):
                await msg.ack()
                done += 1
        await nc.flush()
        out["drain jobs/s"] = done / (time.perf_counter() - t0)
        out["server CPU s/10k drained"] = ((infra.cpu_seconds(pid) or 0.0) - cpu0) / done * 1e4
        await nc.close()
        return out
    finally:
        server.stop()


async def main(n: int, drain_s: float) -> None:
    rows = {name: await measure(name, n, drain_s) for name in LAYOUTS}
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    print(f"| {n:,} jobs | " + " | ".join(LAYOUTS) + " |")
    print("|---" * (len(LAYOUTS) + 1) + "|")
    for key in keys:
        cells = [f"{rows[name][key]:,.3f}" if key in rows[name] else "-" for name in LAYOUTS]
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--jobs", type=int, default=100_000)
    ap.add_argument("--drain-seconds", type=float, default=30.0, help="drain at most this long")
    args = ap.parse_args()
    asyncio.run(main(args.jobs, args.drain_seconds))
