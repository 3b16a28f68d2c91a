"""What metrics and traces cost: enqueue and worker throughput with each of them on and off.

    .venv/bin/python benchmarks/bench_observability.py [--quick] [--jobs 20000] [--reps 3]

Each mode runs in a fresh process (tracing is on for a process that imported OpenTelemetry),
on one local nats-server, the modes interleaved so that a busy machine slows all alike:

* ``off``: neither (nothing optional imported);
* ``metrics``: ``metrics_port=0``, a scrape every second while the worker runs;
* ``tracing (api)``: OpenTelemetry's API imported but no SDK configured (non-recording spans);
* ``tracing (sdk)``: the SDK with a batch processor and an exporter that drops the spans;
* ``tracing (sdk 1%)``: the same, sampling 1% of the traces (``ParentBased(TraceIdRatioBased)``);
* ``metrics + tracing``: both.

Figures: one-by-one enqueue (``job.enqueue()`` awaited in turn), batch enqueue
(``app.enqueue_many``), and a no-op worker draining the backlog (concurrency 100); the
median of the repetitions and its ratio to ``off``; the CPU figures (process time of
the enqueuing or working process per job) hold up better than rates on a busy machine, and
``hooks alone`` (what the mode adds to one job, timed without a broker) best of all.
The ceiling drains the same backlog with
a hand-written nats-py pull consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODES = (
    "off",
    "metrics",
    "tracing (api)",
    "tracing (sdk)",
    "tracing (sdk 1%)",
    "metrics + tracing",
)
FIGURES = (
    "enqueue one [jobs/s]",
    "enqueue_many [jobs/s]",
    "enqueue_many CPU [us/job]",
    "worker drain [jobs/s]",
    "worker CPU [us/job]",
    "hooks alone [us/job]",
)


def configure_tracing(mode: str) -> None:
    """Import OpenTelemetry as an application would; with the SDK, export to nowhere."""
    if "tracing" not in mode:
        return
    from opentelemetry import trace

    if mode == "tracing (api)":
        return
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    sampler = ParentBased(TraceIdRatioBased(0.01 if "1%" in mode else 1.0))
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    trace.set_tracer_provider(provider)


def scrape_every_second(address: tuple[str, int], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics") as r:
            r.read()


async def child(mode: str, url: str, jobs: int, one_by_one: int, prefix: str) -> dict[str, float]:
    configure_tracing(mode)
    from aioq import Aarq, Context, Worker
    from aioq.options import WorkerOptions

    app = Aarq(url, prefix=prefix)

    @app.task(queue="bench")
    async def noop(ctx: Context, n: int) -> None:
        pass

    started = time.perf_counter()
    for n in range(one_by_one):
        await noop.enqueue(n)
    one = one_by_one / (time.perf_counter() - started)
    prepared = [noop.prepare(n) for n in range(jobs)]
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, jobs, 1000):
        await app.enqueue_many(prepared[i : i + 1000])
    many = jobs / (time.perf_counter() - started)
    many_cpu = (time.process_time() - cpu) / jobs * 1e6
    options = WorkerOptions(
        queues=["bench"], concurrency=100, burst=True, handle_signals=False, scheduler=False
    )
    if "metrics" in mode:
        options = options.replace(metrics_port=0)
    worker = Worker(app, options=options)
    stop = threading.Event()
    started, cpu = time.perf_counter(), time.process_time()
    run = asyncio.create_task(worker.run())
    if "metrics" in mode:
        while worker.metrics_address is None and not run.done():  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        if worker.metrics_address is not None:
            address = worker.metrics_address
            threading.Thread(target=scrape_every_second, args=(address, stop), daemon=True).start()
    await run
    drain = (jobs + one_by_one) / (time.perf_counter() - started)
    drain_cpu = (time.process_time() - cpu) / (jobs + one_by_one) * 1e6
    stop.set()
    assert worker.stats.processed == jobs + one_by_one, worker.stats
    hooks = hooks_per_job(mode, "metrics" in mode)
    return dict(zip(FIGURES, (one, many, many_cpu, drain, drain_cpu, hooks), strict=True))


def hooks_per_job(mode: str, metrics: bool, number: int = 5_000) -> float:
    """Microseconds per job of what the mode adds alone, without a broker: the enqueue's
    producer span, and the worker's observer calls and attempt span (best of 3)."""
    import timeit

    from aioq.observing import producer_spans
    from aioq.task import PreparedJob
    from aioq.worker.instruments import attempt_tracer
    from aioq.worker.observe import SILENT, JobObserver, Outcome

    observer: JobObserver = SILENT
    if metrics:
        from aioq.metrics import WorkerMetrics

        observer = WorkerMetrics("w", ["bench"], lambda: 100)
    tracer = attempt_tracer()
    job = PreparedJob("noop", "bench", "job-1", b"{}")

    def one_job() -> None:
        spans = producer_spans((job,))
        headers = None
        if spans is not None:
            headers = spans.jobs[0].headers
            spans.end([False])
        span = None
        if tracer is not None:
            span = tracer.begin(headers, task="noop", queue="bench", job_id="job-1", attempt=1)
        observer.started("bench", "noop", 0.001)
        observer.finished("bench", "noop", Outcome.SUCCEEDED, 0.001)
        observer.stopped("bench")
        if span is not None:
            span.end(Outcome.SUCCEEDED)

    return min(timeit.repeat(one_job, number=number, repeat=3)) / number * 1e6


async def ceiling(url: str, jobs: int) -> float:
    """Drain `jobs` no-op messages with a bare pull consumer: fetch 100, a task each, ack."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

    nc = await nats.connect(url)
    js = nc.jetstream()
    name = f"CEIL{time.monotonic_ns()}"
    await js.add_stream(
        StreamConfig(name=name, subjects=[f"{name}.jobs"], retention=RetentionPolicy.WORK_QUEUE)
    )
    for i in range(0, jobs, 1000):
        futures = [await js.publish_async(f"{name}.jobs", b"n") for _ in range(min(1000, jobs - i))]
        await asyncio.gather(*futures)
    sub = await js.pull_subscribe(
        f"{name}.jobs", "c", config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
    )
    sem = asyncio.Semaphore(100)
    done = 0

    async def handle(msg: Any) -> None:
        nonlocal done
        try:
            await msg.ack()
            done += 1
        finally:
            sem.release()

    started = time.perf_counter()
    tasks = set()
    while done < jobs:
        try:
            msgs = await sub.fetch(100, timeout=1)
        except TimeoutError:  # nats' TimeoutError subclasses it
            continue
        for msg in msgs:
            await sem.acquire()
            task = asyncio.create_task(handle(msg))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    rate = jobs / (time.perf_counter() - started)
    await js.delete_stream(name)
    await nc.close()
    return rate


def run_mode(mode: str, url: str, jobs: int, one_by_one: int, rep: int) -> dict[str, float]:
    prefix = f"obs{rep}{MODES.index(mode)}"
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--url", url, "--jobs", str(jobs),
         "--one-by-one", str(one_by_one), "--prefix", prefix],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"mode {mode!r} failed:\n{out.stdout}\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def table(results: dict[str, list[dict[str, float]]], ceiling_rates: list[float]) -> str:
    medians = {m: {f: statistics.median(r[f] for r in runs) for f in FIGURES}
               for m, runs in results.items()}  # fmt: skip
    lines = [
        "| figure (median) | ceiling | " + " | ".join(MODES) + " |",
        "|---" * (len(MODES) + 2) + "|",
    ]
    for figure in FIGURES:
        cells = []
        for mode in MODES:
            value, base = medians[mode][figure], medians["off"][figure]
            shown = f"{value:,.1f}" if value < 10 else f"{value:,.0f}"
            ratio = "" if mode == "off" or figure.startswith("hooks") else f" ({value / base:.2f}x)"
            cells.append(shown + ratio)
        top = (
            f"{statistics.median(ceiling_rates):,.0f}" if figure == "worker drain [jobs/s]" else "-"
        )
        lines.append(f"| {figure} | {top} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 jobs, 3 repetitions")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--one-by-one", type=int, default=None)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--url")
    parser.add_argument("--prefix", default="obs")
    options = parser.parse_args()
    jobs = 3_000 if options.quick else options.jobs
    one_by_one = options.one_by_one or max(500, jobs // 10)
    if options.child:
        figures = asyncio.run(child(options.child, options.url, jobs, one_by_one, options.prefix))
        print(json.dumps(figures))
        return
    from aioq.embedded import EmbeddedNats

    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    ceiling_rates: list[float] = []
    with EmbeddedNats() as server:
        for rep in range(options.reps):
            ceiling_rates.append(asyncio.run(ceiling(server.url, jobs + one_by_one)))
            order = MODES if rep % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                results[mode].append(run_mode(mode, server.url, jobs, one_by_one, rep))
                print(f"rep {rep + 1} {mode}: {results[mode][-1]}", file=sys.stderr)
    print(f"{jobs:,} jobs enqueued in batches and {one_by_one:,} one by one; "
          f"{options.reps} repetition(s), modes interleaved\n")  # fmt: skip
    print(table(results, ceiling_rates))


if __name__ == "__main__":
    main()
