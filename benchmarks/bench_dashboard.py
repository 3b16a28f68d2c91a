"""The dashboard under load: page latency with a big backlog, the cost of live pages, and
whether an open dashboard slows the workers.

    .venv/bin/python benchmarks/bench_dashboard.py      # 100,000 queued, 1,000,000 records
    .venv/bin/python benchmarks/bench_dashboard.py --queued 10000 --records 100000

Steps, on a fresh nats-server of its own:

1. Fill: `--queued` jobs waiting on queue ``backlog`` (no worker), `--records` job records
   in the results bucket (written straight to the bucket's subjects).
2. Latency: the overview (`/`, fresh queue counts each time), `/api/queues`, the jobs page
   (`/jobs`), `/api/jobs` unfiltered and filtered by status and task, and a job's page;
   median and p95 of `--samples` requests each.
3. Live pages: CPU of the dashboard and of nats-server per second of wall time, with no page
   open and with `--pages` pages following `/api/stream`, while a worker runs jobs at a
   steady pace (events flowing).
4. Workers: the time a burst worker takes to drain `--drain` no-op jobs, without a dashboard
   and with a dashboard and `--pages` live pages.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import msgspec
import nats

from aioq import Aarq, Context
from aioq.embedded import EmbeddedNats
from aioq.wire import JobRecord, JobState

ROOT = Path(__file__).resolve().parent.parent
APP_PATH = "benchmarks.bench_dashboard:app"
PREFIX = os.environ.get("AIOQ_BENCH_PREFIX", "dashbench")

app = Aarq(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"), prefix=PREFIX)


@app.task(queue="work", retries=0)
async def noop(ctx: Context, n: int) -> int:
    return n


@app.task(queue="backlog", retries=0)
async def waiting(ctx: Context, n: int) -> int:
    return n


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NATS_URL": url, "AIOQ_BENCH_PREFIX": PREFIX, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "aioq", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def start_dashboard(url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = cli("dashboard", APP_PATH, "--port", str(port), url=url, log=workdir / "dash.log")
    base = f"http://127.0.0.1:{port}"
    async with httpx2.AsyncClient(base_url=base) as http:
        for _ in range(300):
            try:
                await http.get("/api/csrf")
                return proc, base
            except httpx2.TransportError:
                await asyncio.sleep(0.1)
    raise SystemExit(f"the dashboard did not start: {(workdir / 'dash.log').read_text()}")


async def fill(url: str, queued: int, records: int) -> None:
    print(f"filling: {queued:,} queued jobs, {records:,} job records ...", flush=True)
    started = time.monotonic()
    await app.connect()
    batch = 2000
    for first in range(0, queued, batch):
        jobs = [waiting.prepare(i) for i in range(first, min(first + batch, queued))]
        await app.enqueue_many(jobs)
    nc = await nats.connect(url)
    subject = f"$KV.{app.names.results_bucket}."
    states = [JobState.SUCCEEDED, JobState.FAILED, JobState.SUCCEEDED, JobState.ABORTED]
    now = time.time()
    for i in range(records):
        record = JobRecord(
            id=f"r{i:08d}",
            state=states[i % len(states)],
            task="noop" if i % 3 else "report",
            queue="work",
            attempts=1,
            enqueued_at=now,
            finished_at=now,
            result=i,
        )
        await nc.publish(subject + record.id, msgspec.json.encode(record))
        if i % 20_000 == 19_999:
            await nc.flush(timeout=60)
    await nc.flush(timeout=60)
    await nc.close()
    print(f"  filled in {time.monotonic() - started:.1f} s", flush=True)


async def latency(base: str, samples: int) -> list[tuple[str, float, float]]:
    paths = [
        ("/api/jobs?limit=50", 0.0),
        ("/jobs", 0.0),
        ("/api/jobs?status=failed&limit=50", 0.0),
        ("/api/jobs?task=report&limit=50", 0.0),
        ("/jobs/r00000123", 0.0),
        # The overview's queue counts are cached for one refresh (1 s): space the requests
        # so that each one reads them afresh.
        ("/api/queues", 1.05),
        ("/", 1.05),
    ]
    rows: list[tuple[str, float, float]] = []
    async with httpx2.AsyncClient(base_url=base, timeout=30) as http:
        for path, gap in paths:
            await http.get(path)  # warm up
            times: list[float] = []
            for _ in range(samples):
                if gap:
                    await asyncio.sleep(gap)
                started = time.perf_counter()
                answer = await http.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            rows.append((path, statistics.median(times), p95))
    return rows


async def follow(base: str, pages: int, stop: asyncio.Event) -> list[int]:
    """Open `pages` live feeds and count the bytes each receives until `stop`."""
    received = [0] * pages

    async def one(i: int) -> None:
        async with (
            httpx2.AsyncClient(base_url=base, timeout=None) as http,
            http.stream("GET", "/api/stream") as response,
        ):
            async for chunk in response.aiter_bytes():
                received[i] += len(chunk)
                if stop.is_set():
                    return

    tasks = [asyncio.create_task(one(i)) for i in range(pages)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return received


async def steady_load(stop: asyncio.Event, rate: int) -> int:
    sent = 0
    while not stop.is_set():
        await app.enqueue_many([noop.prepare(sent + i) for i in range(rate // 10)])
        sent += rate // 10
        await asyncio.sleep(0.1)
    return sent


async def cpu_window(pids: dict[str, int], seconds: float) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - started
    return {name: (cpu_seconds(pid) - before[name]) / wall for name, pid in pids.items()}


async def live_cost(
    url: str, base: str, dash_pid: int, server_pid: int, pages: int, seconds: float, workdir: Path
) -> list[tuple[str, dict[str, float], int]]:
    worker = cli("worker", APP_PATH, "-q", "work", url=url, log=workdir / "worker.log")
    rows: list[tuple[str, dict[str, float], int]] = []
    try:
        for label, count in (("no page open", 0), (f"{pages} live pages", pages)):
            stop = asyncio.Event()
            load = asyncio.create_task(steady_load(stop, rate=200))
            feeds = asyncio.create_task(follow(base, count, stop)) if count else None
            await asyncio.sleep(2)  # settle
            pids = {"dashboard": dash_pid, "nats-server": server_pid, "worker": worker.pid}
            cpu = await cpu_window(pids, seconds)
            stop.set()
            await load
            received = await feeds if feeds else []
            rows.append((label, cpu, sum(received)))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return rows


async def drain_time(url: str, jobs: int, workdir: Path) -> float:
    batch = 2000
    for first in range(0, jobs, batch):
        await app.enqueue_many([noop.prepare(i) for i in range(first, min(first + batch, jobs))])
    started = time.monotonic()
    worker = cli("worker", APP_PATH, "-q", "work", "--burst", url=url, log=workdir / "burst.log")
    code = await asyncio.to_thread(worker.wait, 600)
    assert code == 0, (workdir / "burst.log").read_text()[-2000:]
    return time.monotonic() - started


async def main(options: argparse.Namespace) -> None:
    workdir = Path(options.workdir)
    with EmbeddedNats() as server:
        url = server.url
        app.use_servers(url)
        os.environ["NATS_URL"] = url
        assert server.pid is not None
        await fill(url, options.queued, options.records)
        dash, base = await start_dashboard(url, workdir)
        try:
            print(
                f"\nlatency (ms, {options.samples} requests each), "
                f"{options.queued:,} queued, {options.records:,} records:"
            )
            print(f"  {'request':40} {'median':>8} {'p95':>8}")
            for path, median, p95 in await latency(base, options.samples):
                print(f"  {path:40} {median:8.1f} {p95:8.1f}")
            print(
                f"\nCPU per second of wall time, worker running ~200 jobs/s, "
                f"{options.seconds:.0f} s window:"
            )
            for label, cpu, received in await live_cost(
                url, base, dash.pid, server.pid, options.pages, options.seconds, workdir
            ):
                parts = ", ".join(f"{k} {v * 100:.1f} %" for k, v in cpu.items())
                print(f"  {label:18} {parts}; feed bytes received {received:,}")
        finally:
            dash.terminate()
            dash.wait(timeout=30)
        if options.drain:
            alone = await drain_time(url, options.drain, workdir)
            dash, base = await start_dashboard(url, workdir)
            stop = asyncio.Event()
            feeds = asyncio.create_task(follow(base, options.pages, stop))
            await asyncio.sleep(2)
            watched = await drain_time(url, options.drain, workdir)
            stop.set()
            await feeds
            dash.terminate()
            dash.wait(timeout=30)
            print(f"\nburst worker draining {options.drain:,} no-op jobs:")
            rate = options.drain / alone
            print(f"  without a dashboard             {alone:6.2f} s ({rate:,.0f} jobs/s)")
            print(
                f"  with a dashboard, {options.pages} live pages {watched:6.2f} s "
                f"({options.drain / watched:,.0f} jobs/s)"
            )
        await app.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--drain", type=int, default=20_000)
    parser.add_argument("--workdir", default=str(ROOT / "benchmarks" / ".work" / "dashboard"))
    parsed = parser.parse_args()
    Path(parsed.workdir).mkdir(parents=True, exist_ok=True)
    asyncio.run(main(parsed))
