"""Run the fault scenarios and print the table: ``python -m tests.faults [--ci] [names...]``.

Each scenario gets a fresh nats-server on its own store under the output directory (kept for
inspection: server log, worker logs, history). Exit status 1 if any scenario failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from aioq.embedded import server_version

from .checker import Latency, Report
from .harness import Lab
from .scenarios import SCENARIOS, Outcome, Size

ACK_WAIT_S = 1.5


def table(outcomes: list[Outcome]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| scenario | acknowledged | completed | lost | duplicates | explained | latency p50 / p99"
        " / max | result |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for o in outcomes:
        r = o.report
        explained = len(r.duplicates) - len(r.unexplained)
        latency = r.latency
        timing = (
            f"{latency.p50:.2f} / {latency.p99:.2f} / {latency.max:.2f} s" if latency.count else "-"
        )
        verdict = "pass" if o.ok else "FAIL: " + "; ".join(_failures(o))[:200]
        lines.append(
            f"| {o.name} | {r.acknowledged} | {r.completed} | {len(r.lost)} | "
            f"{len(r.duplicates)} | {explained} | {timing} | {verdict} |"
        )
    return "\n".join(lines)


def _failures(o: Outcome) -> list[str]:
    r = o.report
    found = [
        f"{name} {len(ids)}"
        for name, ids in (
            ("lost", r.lost),
            ("unexpected", r.unexpected),
            ("unexplained", r.unexplained),
            ("unexpected dead", r.unexpected_dead),
        )
        if ids
    ]
    return found + o.problems


async def run_one(name: str, root: Path, size: Size) -> Outcome:
    async with Lab(root, name, ack_wait=ACK_WAIT_S) as lab:
        try:
            return await SCENARIOS[name](lab, size)
        except Exception as e:
            traceback.print_exc()
            empty = Report(0, 0, [], [], [], {}, [], Latency(0, 0.0, 0.0, 0.0))
            return Outcome(name, empty, [f"scenario raised {type(e).__name__}: {e}"])


async def main_async(names: list[str], root: Path, size: Size) -> list[Outcome]:
    outcomes = []
    for name in names:
        started = time.monotonic()
        outcome = await run_one(name, root, size)
        took = time.monotonic() - started
        status = "pass" if outcome.ok else "FAIL"
        print(f"[{status}] {name} ({took:.0f}s): {outcome.summary()}", flush=True)
        outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"scenarios (default all): {', '.join(SCENARIOS)}")
    parser.add_argument("--ci", action="store_true", help="the small sizes the pytest subset uses")
    parser.add_argument("--out", type=Path, help="keep logs and histories here")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    names = args.names or list(SCENARIOS)
    root = args.out or Path(tempfile.mkdtemp(prefix="aioq-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    major, minor, patch = server_version()
    print(
        f"aioq fault suite, {'ci' if args.ci else 'full'} sizes, "
        f"nats-server {major}.{minor}.{patch}, Python {platform.python_version()}, "
        f"{platform.machine()}, {_cores()} cores; logs in {root}",
        flush=True,
    )
    outcomes = asyncio.run(main_async(names, root, Size(full=not args.ci)))
    print()
    print(table(outcomes))
    if args.out is None and all(o.ok for o in outcomes):
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(o.ok for o in outcomes) else 1


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
