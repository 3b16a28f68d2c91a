"""CPU-bound work in tasks, without blocking the worker's event loop.

A worker runs many jobs on one event loop: a task that computes for a second in ``async def``
code stalls every other job, the lease renewals and the heartbeat. Two ways out:

- ``await asyncio.to_thread(fn, ...)`` for work that releases the GIL (hashing, compression,
  NumPy, most C extensions) or that blocks on I/O. A plain ``def`` task does the same by itself:
  the worker runs it in its thread pool.
- a `concurrent.futures.ProcessPoolExecutor` for pure-Python computation, which holds the GIL:
  one pool per worker process, created in a startup hook and shut down in a shutdown hook.

Run it from the repository root::

    python examples/cpu_bound.py                                  # a throwaway nats-server
    NATS_URL=nats://127.0.0.1:4222 python examples/cpu_bound.py   # your own server
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

from aioq import Aarq, Context, State, Worker
from aioq.embedded import EmbeddedNats

app = Aarq("nats://127.0.0.1:4222", prefix="cpu-example")


def fib(n: int) -> int:
    """Pure Python, holds the GIL: a job for a process pool. Module level, so it pickles."""
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def digest(size_mb: int) -> str:
    """hashlib releases the GIL on large buffers: a job for a thread."""
    data = b"x" * (size_mb * 1024 * 1024)
    return hashlib.sha256(data).hexdigest()[:16]


@app.on_startup
async def start_pool(state: State) -> None:
    # "spawn" starts clean interpreters: safe next to the worker's threads, the same on every OS.
    state.processes = ProcessPoolExecutor(
        max_workers=2, mp_context=multiprocessing.get_context("spawn")
    )


@app.on_shutdown
async def stop_pool(state: State) -> None:
    await asyncio.to_thread(state.processes.shutdown)


@app.task(queue="cpu", timeout=60)
async def fib_in_process(ctx: Context, n: int) -> int:
    """Compute in the process pool; the event loop stays free while it runs."""
    loop = asyncio.get_running_loop()
    result: int = await loop.run_in_executor(ctx.state.processes, fib, n)
    return result


@app.task(queue="cpu", timeout=60)
async def digest_in_thread(ctx: Context, size_mb: int) -> str:
    """Hash in a thread."""
    return await asyncio.to_thread(digest, size_mb)


@app.task(queue="cpu", timeout=60)
def digest_sync(ctx: Context, size_mb: int) -> str:
    """A plain ``def`` task: the worker runs it in a thread of its own pool."""
    return digest(size_mb)


async def loop_lag(stop: asyncio.Event) -> float:
    """The longest the event loop took to wake a 10 ms sleep, minus those 10 ms."""
    worst = 0.0
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        worst = max(worst, time.perf_counter() - before - 0.01)
    return worst


async def demo(url: str) -> None:
    app.use_servers(url)
    async with app:
        worker = Worker(app, queues=["cpu"], concurrency=4)
        running = asyncio.create_task(worker.run())
        while not worker.ready:  # noqa: ASYNC110 - a demo's simple wait
            await asyncio.sleep(0.01)
        stop = asyncio.Event()
        lag = asyncio.create_task(loop_lag(stop))

        jobs = await app.enqueue_many(
            [
                fib_in_process.prepare(25),
                fib_in_process.prepare(26),
                digest_in_thread.prepare(32),
                digest_sync.prepare(32),
            ]
        )
        for job in jobs:
            print(f"{job.task}: {await job.result(timeout=60)}")
        stop.set()
        print(f"worst event-loop lag while they ran: {await lag * 1000:.0f} ms")
        worker.stop()
        await running


def main() -> None:
    url = os.environ.get("NATS_URL")
    if url:
        asyncio.run(demo(url))
    else:
        with EmbeddedNats() as server:
            asyncio.run(demo(server.url))


if __name__ == "__main__":
    main()
