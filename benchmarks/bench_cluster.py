"""Worker processes on one queue: one server against a 3-node cluster with R1 and R3 streams.

    .venv/bin/python benchmarks/bench_cluster.py                 # every setup, 1, 2, 4 processes
    .venv/bin/python benchmarks/bench_cluster.py --setups r3 --procs 2 -n 5000

For each setup and process count: a backlog of N no-op jobs is enqueued (`enqueue_many`),
then the worker processes (``aioq worker``, concurrency 100, results on) drain it: the rate
while every process was busy. Then jobs are enqueued one by one at a steady rate and the
latency from enqueue to start is measured (p50, p99). On a cluster worker i connects to node
i mod 3 only, so the workers are spread over the nodes; the producer knows every node.
nats-server CPU per 10,000 jobs is summed over the nodes, from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aioq.embedded import EmbeddedNats, server_version
from aioq.local_cluster import LocalCluster
from aioq.naming import Names
from aioq.settings import Replication
from benchmarks import infra
from benchmarks.run import quantile, throughput
from benchmarks.systems import CONCURRENCY, _exe

SETUPS = {"single": None, "r1": 1, "r3": 3}


@dataclass
class Figure:
    setup: str
    procs: int
    rate: float
    all_busy: bool
    p50_ms: float
    p99_ms: float
    server_cpu_10k: float
    worker_cpu_10k: float


def _server_pids(servers: list[EmbeddedNats]) -> list[int]:
    return [s.pid for s in servers if s.pid is not None]


def _cpu(pids: list[int]) -> float:
    return sum(infra.cpu_seconds(p) or 0.0 for p in pids)


async def _wait_records(
    directory: Path, target: int, timeout: float, group: infra.WorkerGroup
) -> None:
    deadline = time.monotonic() + timeout
    while infra.count_records(directory) < target:
        dead = group.dead_report()
        if dead:
            raise RuntimeError(dead)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{infra.count_records(directory)}/{target} jobs after {timeout} s")
        await asyncio.sleep(0.02)


async def measure(
    setup: str, urls: list[str], servers: list[EmbeddedNats], procs: int, args: argparse.Namespace
) -> Figure:
    from benchmarks import aioq_app

    prefix = f"b{uuid.uuid4().hex[:8]}"
    app = aioq_app.app
    await app.close()
    replicas = SETUPS[setup]
    env = {"AIOQ_BENCH_REPLICAS": str(replicas or "")}
    settings = dataclasses.replace(app.settings, servers=urls, replication=Replication(replicas))
    app.configure(settings=settings, names=Names(prefix))
    # Connected (and its streams created) before the workers start.
    await app.connect()
    n = args.jobs
    now = time.time()
    await app.enqueue_many([aioq_app.noop.prepare(now) for _ in range(n)])
    record_dir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    commands = [
        [_exe("aioq"), "worker", "benchmarks.aioq_app:app", "-q", "bench", "-c", str(CONCURRENCY),
         "-s", urls[i % len(urls)], "--prefix", prefix, "--log-level", "warning"]
        for i in range(procs)
    ]  # fmt: skip
    group = infra.WorkerGroup.start(commands, env, record_dir)
    try:
        await _wait_records(record_dir, 1, 60, group)  # the workers are up
        cpu0, worker0 = _cpu(_server_pids(servers)), _cpu(group.all_pids())
        done0 = infra.count_records(record_dir)
        await _wait_records(record_dir, n, 30 + n / 200, group)
        done = infra.count_records(record_dir) - done0
        server_cpu = _cpu(_server_pids(servers)) - cpu0
        worker_cpu = _cpu(group.all_pids()) - worker0
        rate, busy = throughput(infra.read_records(record_dir))
        # Latency at a steady rate, one awaited enqueue at a time.
        started = time.time()
        count = int(args.rate * args.latency_seconds)
        for i in range(count):
            ahead = started + i / args.rate - time.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
            await aioq_app.noop.enqueue(time.time())
        await _wait_records(record_dir, n + count, 60, group)
        lat = sorted(
            (r[1] - r[0]) * 1000
            for rs in infra.read_records(record_dir).values()
            for r in rs
            if r[0] >= started
        )
    finally:
        group.stop()
        await app.close()
    p50, p99 = quantile(lat, 0.5), quantile(lat, 0.99)
    per10k = 10_000 / max(done, 1)
    return Figure(setup, procs, rate, busy, p50, p99, server_cpu * per10k, worker_cpu * per10k)


async def run_setup(setup: str, args: argparse.Namespace, root: Path) -> list[Figure]:
    figures = []
    if setup == "single":
        server = EmbeddedNats(store_dir=root / setup)
        server.start()
        servers, urls, stop = [server], [server.url], server.stop
    else:
        cluster = LocalCluster(root / setup, 3)
        cluster.start()
        servers, urls, stop = [n.server for n in cluster.nodes], cluster.urls, cluster.stop
    try:
        for procs in args.procs:
            for _ in range(args.reps):
                figure = await measure(setup, urls, servers, procs, args)
                print(
                    f"{setup:6} {procs} proc: {figure.rate:8,.0f} jobs/s"
                    f"{'' if figure.all_busy else ' (not all busy)'}, latency p50 "
                    f"{figure.p50_ms:.2f} ms p99 {figure.p99_ms:.2f} ms, server CPU "
                    f"{figure.server_cpu_10k:.2f} s/10k jobs, workers "
                    f"{figure.worker_cpu_10k:.2f}, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
                figures.append(figure)
    finally:
        stop()
    return figures


def table(figures: list[Figure]) -> str:
    """Median per setup and process count, as Markdown."""
    rows = [
        "| setup | processes | jobs/s | x 1 process | p50 ms | p99 ms | server CPU s/10k jobs "
        "| workers CPU s/10k jobs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base: dict[str, float] = {}
    keys = sorted(
        {(f.setup, f.procs) for f in figures}, key=lambda k: (list(SETUPS).index(k[0]), k[1])
    )
    for setup, procs in keys:
        runs = [f for f in figures if (f.setup, f.procs) == (setup, procs)]

        def med(values: list[float]) -> float:
            return sorted(values)[len(values) // 2]

        rate = med([f.rate for f in runs])
        base.setdefault(setup, rate)
        rows.append(
            f"| {setup} | {procs} | {rate:,.0f} | {rate / base[setup]:.2f} | "
            f"{med([f.p50_ms for f in runs]):.2f} | {med([f.p99_ms for f in runs]):.2f} | "
            f"{med([f.server_cpu_10k for f in runs]):.2f} | "
            f"{med([f.worker_cpu_10k for f in runs]):.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--setups", default="single,r1,r3", help="single, r1, r3 (comma-separated)")
    parser.add_argument("--procs", default="1,2,4", help="worker process counts")
    parser.add_argument("-n", "--jobs", type=int, default=20_000, help="backlog per run")
    parser.add_argument("--reps", type=int, default=1, help="runs per figure (median shown)")
    parser.add_argument("--rate", type=float, default=300.0, help="jobs/s of the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    args.procs = [int(p) for p in args.procs.split(",")]
    setups = args.setups.split(",")
    major, minor, patch = server_version()
    print(
        f"nats-server {major}.{minor}.{patch}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; backlog {args.jobs} jobs, "
        f"concurrency {CONCURRENCY} per process, results on",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    figures: list[Figure] = []
    for setup in setups:
        figures += asyncio.run(run_setup(setup, args, root))
    print()
    print(table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
