"""What the cluster fault tests share: an app whose task records runs, a retrying producer.

The task records its run before the worker acknowledges it, so a job that ran twice (its
acknowledgement lost with a node) shows as a duplicate, never as a loss.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import nats

from aioq import Aarq, Context
from aioq.errors import EnqueueError
from aioq.local_cluster import ClusterNode, LocalCluster

QUEUE = "c"


@dataclass
class Ledger:
    """What the producer got acknowledged and what the workers ran."""

    acked: set[str] = field(default_factory=set)
    runs: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)
    last_run: float = 0.0
    gaps: list[float] = field(default_factory=list)

    def ran(self, job_id: str) -> None:
        now = time.monotonic()
        if self.last_run:
            self.gaps.append(now - self.last_run)
        self.last_run = now
        self.runs[job_id] += 1

    @property
    def lost(self) -> set[str]:
        return {j for j in self.acked if not self.runs[j]}

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.runs.values() if n > 1)

    @property
    def longest_outage(self) -> float:
        """The longest wait for an acknowledgement: between two acknowledged enqueues."""
        times = self.acked_at
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def summary(self) -> str:
        return (
            f"acknowledged {len(self.acked)}, ran {len(self.runs)}, lost {len(self.lost)}, "
            f"duplicates {self.duplicates}, failed enqueue attempts {len(self.failures)}, "
            f"longest enqueue outage {self.longest_outage:.2f} s"
        )


def build_app(
    servers: Sequence[str], prefix: str, ledger: Ledger, *, replicas: int | None = 3
) -> Aarq:
    """An app with one task, `work(pause)`, that records each run in `ledger`."""
    app = Aarq(list(servers), prefix=prefix, ack_wait=2.0, replicas=replicas)

    @app.task(queue=QUEUE, name="work", retries=10)
    async def work(ctx: Context, pause: float) -> None:
        await asyncio.sleep(pause)
        ledger.ran(ctx.job_id)

    return app


async def enqueue(app: Aarq, ledger: Ledger, job_id: str, pause: float = 0.01) -> None:
    """Enqueue one job, retrying with the same id until the server acknowledges it."""
    call = app.get_task("work").with_options(job_id=job_id)
    while True:
        try:
            await call.enqueue(pause)
        except EnqueueError as e:
            ledger.failures.append(str(e))
            await asyncio.sleep(0.05)
            continue
        ledger.acked.add(job_id)
        ledger.acked_at.append(time.monotonic())
        return


async def produce(
    app: Aarq, ledger: Ledger, count: int, rate: float, pause: float = 0.01
) -> list[str]:
    """Enqueue `count` jobs one after another, about `rate` per second."""
    ids = [f"j{i:05d}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    for job_id in ids:
        await enqueue(app, ledger, job_id, pause)
        await asyncio.sleep(1 / rate)
    return ids


async def drained(ledger: Ledger, timeout: float) -> set[str]:
    """Wait until every acknowledged job ran; return those that did not."""
    deadline = time.monotonic() + timeout
    while ledger.lost and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a ledger
        await asyncio.sleep(0.05)
    return ledger.lost


async def leaders(cluster: LocalCluster, app: Aarq) -> tuple[ClusterNode, ClusterNode]:
    """The nodes leading the jobs stream and the queue's consumer."""
    running = next(n for n in cluster.nodes if n.running)
    nc = await nats.connect(running.url)
    try:
        js = nc.jetstream()
        stream = await js.stream_info(app.names.jobs_stream)
        consumer = await js.consumer_info(app.names.jobs_stream, app.names.consumer(QUEUE))
    finally:
        await nc.close()
    assert stream.cluster is not None
    assert consumer.cluster is not None
    return cluster.node(str(stream.cluster.leader)), cluster.node(str(consumer.cluster.leader))


async def connected_node(cluster: LocalCluster, app: Aarq) -> ClusterNode | None:
    """The node the app's connection in this loop is on (None while it reconnects)."""
    broker = await app.connect()
    url = getattr(broker, "nc").connected_url  # noqa: B009 - NATS brokers only
    port = url.port if url is not None else None
    return next((n for n in cluster.nodes if n.ports.client == port), None)
