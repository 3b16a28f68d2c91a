"""taskiq + taskiq-nats peer: the tasks and the broker its worker CLI loads.

Worker (one process doing jobs; taskiq's CLI also runs a supervisor process):

    taskiq worker benchmarks.taskiq_app:broker --workers 1 --max-async-tasks 100 \
        --log-level WARNING

Uses taskiq-nats' JetStream broker (``PullBasedJetStreamBroker``: durable pull consumer,
``fetch(batch=pull_consume_batch)``, message acked by taskiq's receiver after the result is
"saved", i.e. ``--ack-type when_saved``, the default; no result backend is configured).
``BENCH_TASKIQ_BATCH`` sets ``pull_consume_batch`` (taskiq-nats' default is 1).
"""

from __future__ import annotations

import asyncio
import os
import time

from taskiq_nats import PullBasedJetStreamBroker

from benchmarks.recorder import record

broker = PullBasedJetStreamBroker(
    servers=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
    subject="bench.taskiq",
    stream_name="BENCH_TASKIQ",
    durable="bench_taskiq",
    pull_consume_batch=int(os.environ.get("BENCH_TASKIQ_BATCH", "1")),
)


@broker.task
async def noop(t: float) -> None:
    record(t, time.time())


@broker.task
async def sleep10ms(t: float) -> None:
    start = time.time()
    await asyncio.sleep(0.01)
    record(t, start)
