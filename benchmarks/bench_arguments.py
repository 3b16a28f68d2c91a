"""Per-job cost of checking and converting task arguments, without a broker.

    .venv/bin/python benchmarks/bench_arguments.py [--number 20000] [--repeat 15]

For each kind of task it prints microseconds per job (the best of the repeats, old and new
timed in turn so that a busy machine slows both alike):

* enqueue: the bind check alone (``bind``, what enqueue checked before arguments were typed),
  then `Task.check_arguments` plus the NaN test on the encoded job (``check``), and the
  whole `Task.prepare` (with encoding) for scale;
* worker: the bind check alone, then `Task.arguments_from_json` (bind check and conversion
  to the annotated types), and decoding the job for scale.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

if __package__ in (None, ""):  # run as a script: make `aioq` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioq import Aarq, Context
from aioq.task import Task
from aioq.wire import decode_job

app = Aarq("nats://127.0.0.1:1", prefix="bench")


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class Person:
    name: str
    born: datetime


@app.task
async def untyped(ctx, to, subject, retries):  # type: ignore[no-untyped-def]
    """Three arguments, no annotations."""


@app.task
async def scalars(ctx: Context, to: str, subject: str, retries: int) -> None:
    """Three arguments annotated with JSON's own types."""


@app.task
async def rich(ctx: Context, when: datetime, id: uuid.UUID, at: Point, who: Person) -> None:
    """Types that travel as strings or objects and are converted back at the worker."""


NOW = datetime(2030, 1, 1, tzinfo=UTC)
CALLS: dict[str, tuple[Task[Any, Any], tuple[Any, ...]]] = {
    "untyped": (untyped, ("ada@example.com", "hello", 3)),
    "scalars": (scalars, ("ada@example.com", "hello", 3)),
    "rich": (rich, (NOW, uuid.uuid4(), Point(1, 2), Person("ada", NOW))),
}


def per_job_us(fn: Callable[[], object], number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=15)
    options = parser.parse_args()
    columns = ("bind", "check", "prepare", "| bind", "from_json", "decode")
    print(f"{'us/job':8}" + "".join(f"{c:>11}" for c in columns))
    for name, (task, args) in CALLS.items():
        best = measure(task, args, options.number, options.repeat)
        print(f"{name:8}" + "".join(f"{t:11.2f}" for t in best))


def measure(task: Task[Any, Any], args: tuple[Any, ...], number: int, repeat: int) -> list[float]:
    """Best microseconds per call of each step, the steps timed in turn."""
    data = task.prepare(*args).data
    job = decode_job(data)

    def check() -> bool:
        task.check_arguments(args, {})
        return b"null" in data

    steps: list[Callable[[], object]] = [
        lambda: task._bind(args, {}),
        check,
        lambda: task.prepare(*args),
        lambda: task._bind(job.args, job.kwargs),
        lambda: task.arguments_from_json(job.args, job.kwargs),
        lambda: decode_job(data),
    ]
    best = [math.inf] * len(steps)
    for _ in range(repeat):
        for i, step in enumerate(steps):
            best[i] = min(best[i], per_job_us(step, number))
    return best


if __name__ == "__main__":
    main()
