"""Profile aioq's hot paths and print where the time goes (issue 6).

    .venv/bin/python benchmarks/profile_hot_path.py worker [--jobs 60000] [--kind noop|sleep]
    .venv/bin/python benchmarks/profile_hot_path.py enqueue [--jobs 20000]

``worker``: a fresh nats-server, a backlog of no-op (or ``sleep(0.01)``) jobs, then the
worker CLI as in (b); py-spy (``pip install py-spy``) attaches to it while it drains and
samples it. ``enqueue``: ``app.enqueue_many`` in chunks of 10,000 under cProfile, in this
process. Both print the functions with the largest share of samples (self and inclusive)
and the CPU seconds per 10,000 jobs of the worker and of nats-server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import infra
from benchmarks.systems import SYSTEMS


def print_raw_profile(path: Path, top: int) -> None:
    """Summarise py-spy's raw (collapsed stacks) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"{total} samples")
    # Inclusive shares only for aioq's and nats-py's own functions (not the CLI's frames).
    inclusive = collections.Counter(
        {f: n for f, n in inclusive.items() if ("aioq/" in f or "nats/" in f) and "cli/" not in f}
    )
    for title, counter in (("self", own), ("inclusive (aioq and nats-py)", inclusive)):
        print(f"--- {title}")
        for frame, n in counter.most_common(top):
            print(f"{100 * n / total:5.1f}%  {frame}")


async def profile_worker(jobs: int, kind: str, seconds: int, top: int) -> None:
    spy = infra.find_program("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    server = infra.NatsServer.start()
    record_dir = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        system = SYSTEMS["aioq"]()
        os.environ["NATS_URL"] = server.url
        await system.open(server.url)
        for start in range(0, jobs, 10_000):
            await system.enqueue_batch(kind, [time.time()] * min(10_000, jobs - start))
        await system.close()
        group = infra.WorkerGroup.start(system.worker_commands(1), system.env(), record_dir)
        try:
            while infra.count_records(record_dir) == 0:
                if group.dead_report():
                    raise SystemExit(group.dead_report())
                await asyncio.sleep(0.01)
            (pid,) = group.job_pids()
            server_cpu0, worker_cpu0 = infra.cpu_seconds(server.proc.pid), infra.cpu_seconds(pid)
            done0 = infra.count_records(record_dir)
            out = record_dir / "profile.txt"
            spy_cmd = [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "1000",
                       "--nonblocking", "-f", "raw", "-o", str(out)]  # fmt: skip
            await asyncio.to_thread(subprocess.run, spy_cmd, capture_output=True, check=True)
            done = infra.count_records(record_dir) - done0
            server_cpu, worker_cpu = infra.cpu_seconds(server.proc.pid), infra.cpu_seconds(pid)
        finally:
            group.stop()
        if done < jobs // 10 or None in (server_cpu0, worker_cpu0, server_cpu, worker_cpu):
            print(f"note: only {done} jobs ran while sampling; raise --jobs")
        else:
            assert server_cpu0 is not None
            assert server_cpu is not None
            assert worker_cpu0 is not None
            assert worker_cpu is not None
            per = 10_000 / done
            print(f"{done} jobs while sampling; CPU per 10k jobs: worker "
                  f"{(worker_cpu - worker_cpu0) * per:.2f} s, nats-server "
                  f"{(server_cpu - server_cpu0) * per:.2f} s")  # fmt: skip
        print_raw_profile(out, top)
    finally:
        server.stop()
        shutil.rmtree(record_dir, ignore_errors=True)


async def profile_enqueue(jobs: int, top: int) -> None:
    server = infra.NatsServer.start()
    try:
        system = SYSTEMS["aioq"]()
        os.environ["NATS_URL"] = server.url
        await system.open(server.url)
        await system.enqueue_batch("noop", [time.time()] * 100)  # connect, create the streams
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for start in range(0, jobs, 10_000):
            await system.enqueue_batch("noop", [time.time()] * min(10_000, jobs - start))
        profiler.disable()
        rate = jobs / (time.perf_counter() - started)
        server_cpu = infra.cpu_seconds(server.proc.pid)
        await system.close()
        print(f"enqueue_many under cProfile: {rate:,.0f} jobs/s (slower than unprofiled); "
              f"nats-server CPU so far {server_cpu} s")  # fmt: skip
        pstats.Stats(profiler).sort_stats("tottime").print_stats(top)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["worker", "enqueue"])
    parser.add_argument("-n", "--jobs", type=int, default=None)
    parser.add_argument("--kind", choices=["noop", "sleep"], default="noop")
    parser.add_argument("--seconds", type=int, default=3, help="py-spy sampling time")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.what == "worker":
        jobs = args.jobs or (100_000 if args.kind == "noop" else 30_000)
        asyncio.run(profile_worker(jobs, args.kind, args.seconds, args.top))
    else:
        asyncio.run(profile_enqueue(args.jobs or 20_000, args.top))


if __name__ == "__main__":
    main()
