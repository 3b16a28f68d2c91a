"""The ceiling: a hand-written nats-py worker, the fastest thing a job framework could be.

Durable pull consumer on a work-queue stream, ``fetch(batch=100)``, one asyncio task per
message under an ``asyncio.Semaphore(concurrency)``, ``msg.ack()`` after the job.

Payload: ``b"n:<enqueue time>"`` (no-op job) or ``b"s:<enqueue time>"`` (``await
asyncio.sleep(0.01)``). Run as its own process:

    python -m benchmarks.ceiling_worker --url nats://127.0.0.1:4222 -c 100

SIGTERM/SIGINT stop it gracefully (in-flight jobs finish and are acked), exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from nats.js.errors import BadRequestError

from benchmarks.recorder import record

STREAM = "CEILING"
SUBJECT = "ceiling.jobs"
DURABLE = "ceiling"


async def ensure_stream(js: nats.js.JetStreamContext) -> None:
    """Create the work-queue stream and the durable pull consumer (idempotent)."""
    try:
        await js.add_stream(
            StreamConfig(name=STREAM, subjects=[SUBJECT], retention=RetentionPolicy.WORK_QUEUE)
        )
    except BadRequestError as exc:  # already exists with another config
        if exc.err_code != 10058:
            raise
    await js.add_consumer(
        STREAM,
        ConsumerConfig(durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT),
    )


async def handle(msg: nats.aio.msg.Msg, sem: asyncio.Semaphore) -> None:
    try:
        start = time.time()
        data = msg.data
        if data[:1] == b"s":
            await asyncio.sleep(0.01)
        record(float(data[2:]), start)
        await msg.ack()
    finally:
        sem.release()


async def main(url: str, concurrency: int, batch: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js)
    psub = await js.pull_subscribe(SUBJECT, durable=DURABLE, stream=STREAM)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    sem = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        try:
            msgs = await psub.fetch(batch=batch, timeout=1.0)
        except TimeoutError:  # nats' TimeoutError subclasses it; _fetch_n also raises it bare
            continue
        for msg in msgs:
            await sem.acquire()
            task = asyncio.create_task(handle(msg, sem))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    # Not nc.drain(): with a pull subscription it waits out its drain timeout (30 s).
    await nc.flush(timeout=5)
    await nc.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.concurrency, args.batch))


if __name__ == "__main__":
    cli()
