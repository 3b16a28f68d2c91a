"""Python calls and CPU seconds of the worker per no-op job, for one or more source trees.

    .venv/bin/python benchmarks/calls_per_job.py [TREE ...] [--reps 4] [--jobs 20000]

Each TREE (default: this checkout) is a directory holding an aioq tree, such as a worktree
of an older commit (``git worktree add --detach /tmp/old COMMIT``). For each tree and rep, in
interleaved order (A B A B ...): a fresh nats-server, a backlog of no-op jobs filled with the
tree's ``benchmarks.aioq_app``, then the tree's worker CLI drains it (``--burst``, the
asyncio loop). Calls are counted by cProfile (every Python and builtin call, the loop's own
included); CPU is the worker's user + system seconds in a run without the profiler. Both are
marginal: a drain of ``--base`` jobs is subtracted, which removes start-up and shutdown.
Calls per job hardly move between runs; CPU seconds move by about 10% on a busy machine.
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import infra

_ADDRESS = re.compile(r" at 0x[0-9a-f]+")  # differs from process to process
_FILL = """
import asyncio, sys, time
from benchmarks.aioq_app import app, noop
async def fill(n):
    async with app:
        for k in range(0, n, 10_000):
            await app.enqueue_many([noop.prepare(time.time()) for _ in range(min(10_000, n - k))])
asyncio.run(fill(int(sys.argv[1])))
"""


def _drain(tree: Path, jobs: int, profile: Path | None) -> float:
    """Fill `jobs` no-op jobs, drain them with `tree`'s worker; the worker's CPU seconds."""
    server = infra.NatsServer.start()
    env = {**os.environ, "PYTHONPATH": str(tree), "NATS_URL": server.url}
    env["BENCH_RECORD_DIR"] = tempfile.mkdtemp(prefix="bench-calls-")
    try:
        run = [sys.executable, "-c", _FILL, str(jobs)]
        subprocess.run(run, cwd=tree, env=env, check=True)
        worker = ["-m", "aioq", "worker", "benchmarks.aioq_app:app", "-q", "bench", "-c", "100"]
        worker += ["-s", server.url, "--burst", "--log-level", "warning"]
        if "--loop" in subprocess.run(
            [sys.executable, "-m", "aioq", "worker", "--help"],
            cwd=tree, env=env, capture_output=True, text=True, check=False,
        ).stdout:  # fmt: skip
            worker += ["--loop", "asyncio"]  # older trees have no --loop: asyncio anyway
        prof = ["-m", "cProfile", "-o", str(profile)] if profile else []
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, *prof, *worker], cwd=tree, env=env, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    finally:
        server.stop()


def _counts(profile: Path, tree: Path) -> collections.Counter[str]:
    """Calls per function (``file:name``, the file relative to its tree or site-packages)."""
    counts: collections.Counter[str] = collections.Counter()
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    for (file, _, name), row in stats.items():
        short = file.removeprefix(f"{tree}/").rpartition("site-packages/")[2]
        counts[f"{short}:{_ADDRESS.sub('', name)}"] += row[1]
    return counts


def _calls(tree: Path, jobs: int, base: int) -> dict[str, float]:
    """Calls per job of each function in `tree`'s worker, past those of a `base`-job drain."""
    with tempfile.TemporaryDirectory() as tmp:
        made = []
        for n in (jobs, base):
            _drain(tree, n, Path(tmp) / f"{n}.prof")
            made.append(_counts(Path(tmp) / f"{n}.prof", tree))
    big, small = made
    return {key: (big[key] - small[key]) / (jobs - base) for key in big}


def _cpu(tree: Path, jobs: int, base: int) -> float:
    """Worker CPU seconds per 10,000 jobs of `tree`, past those of a `base`-job drain."""
    return (_drain(tree, jobs, None) - _drain(tree, base, None)) / (jobs - base) * 10_000


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", type=Path, default=[Path(__file__).parent.parent])
    parser.add_argument("--reps", type=int, default=4, help="interleaved rounds")
    parser.add_argument("-n", "--jobs", type=int, default=20_000)
    parser.add_argument("--base", type=int, default=1_000, help="drain subtracted")
    parser.add_argument("--no-calls", action="store_true", help="CPU only (faster)")
    parser.add_argument("--top", type=int, default=15, help="functions listed per tree pair")
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    calls: dict[Path, list[float]] = {t: [] for t in trees}
    functions: dict[Path, dict[str, float]] = {}
    cpu: dict[Path, list[float]] = {t: [] for t in trees}
    for rep in range(args.reps):
        for tree in trees:
            if not args.no_calls:
                functions[tree] = _calls(tree, args.jobs, args.base)
                calls[tree].append(sum(functions[tree].values()))
            cpu[tree].append(_cpu(tree, args.jobs, args.base))
            made = f"calls/job {calls[tree][-1]:.1f}, " if calls[tree] else ""
            print(f"rep {rep + 1} {tree}: {made}worker CPU {cpu[tree][-1]:.3f} s/10k", flush=True)
    for tree in trees:
        print(f"{tree}:")
        if calls[tree]:
            print(f"  calls/job           {_summary(calls[tree])}")
        print(f"  worker CPU s/10k    {_summary(cpu[tree])}")
    for tree in trees[1:] if functions else ():
        print(f"calls/job that differ, {trees[0].name} -> {tree.name} (last rep):")
        _print_differences(functions[trees[0]], functions[tree], args.top)


def _print_differences(old: dict[str, float], new: dict[str, float], top: int) -> None:
    change = {key: new.get(key, 0.0) - old.get(key, 0.0) for key in old.keys() | new.keys()}
    for key in sorted(change, key=lambda k: -abs(change[k]))[:top]:
        if abs(change[key]) >= 0.05:
            before, after = old.get(key, 0.0), new.get(key, 0.0)
            print(f"  {change[key]:+7.2f}  {before:7.2f} -> {after:7.2f}  {key}")


if __name__ == "__main__":
    main()
