"""Prometheus metrics of one worker process, served on ``/metrics`` (the ``metrics`` extra).

`WorkerMetrics` is the worker's `JobObserver`: it counts what the worker tells it, samples the
event loop's lag and the queues' backlog in the background, and serves the figures from a
thread, so a scrape never waits for the event loop. Each worker has its own registry.
docs/observability.md lists the names and labels.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from aioq._version import __version__
from aioq.errors import ConfigError
from aioq.worker.observe import Outcome

__all__ = ["DURATION_BUCKETS", "WorkerMetrics"]

log = logging.getLogger("aioq.metrics")

#: Bucket bounds (seconds) of the job duration and wait histograms: 1 ms to 10 min.
DURATION_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
)  # fmt: skip
# How often the event loop's lag is sampled, and the queues' backlog read from the server.
_LAG_PROBE_S: Final = 0.5
_PENDING_EVERY_S: Final = 5.0

Backlog = Callable[[str], Awaitable[int]]


class WorkerMetrics:
    """The metrics of one worker, and the HTTP server that exposes them."""

    def __init__(self, worker_id: str, queues: Sequence[str], concurrency: Callable[[], int]):
        self.registry = r = CollectorRegistry()
        self.started_total = Counter(
            "aioq_jobs_started", "Attempts started.", ["queue", "task"], registry=r
        )
        self.finished_total = Counter(
            "aioq_jobs_finished",
            "Jobs settled, by outcome (one count per attempt that ended with one).",
            ["queue", "task", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "aioq_job_duration_seconds",
            "Seconds an attempt ran, from its start to its outcome.",
            ["queue", "task"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.wait = Histogram(
            "aioq_job_wait_seconds",
            "Seconds from enqueue (a delayed job: its release) to the first attempt's start.",
            ["queue", "task"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.running = Gauge("aioq_jobs_running", "Attempts running now.", ["queue"], registry=r)
        self.concurrency = Gauge(
            "aioq_worker_concurrency", "Most jobs the worker runs at once.", registry=r
        )
        self.concurrency.set_function(lambda: float(concurrency()))
        self.renewals = Counter(
            "aioq_lease_renewals", "Leases of running or waiting jobs renewed.", registry=r
        )
        self.lag = Gauge(
            "aioq_event_loop_lag_seconds",
            f"How late the event loop ran a timer, sampled every {_LAG_PROBE_S}s.",
            registry=r,
        )
        self.pending = Gauge(
            "aioq_queue_pending",
            "Jobs of the queue waiting, running or waiting out a retry delay (from its consumer, "
            f"read every {_PENDING_EVERY_S:g}s).",
            ["queue"],
            registry=r,
        )
        info = Gauge(
            "aioq_worker_info", "The worker's id and version.", ["worker", "version"], registry=r
        )
        info.labels(worker_id, __version__).set(1)
        for queue in queues:
            self.running.labels(queue)
        self._queues = list(queues)
        self._labels: dict[tuple[str, str], _Children] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- the observer --------------------------------------------------------------------

    def _children(self, queue: str, task: str) -> _Children:
        found = self._labels.get((queue, task))
        if found is None:
            found = self._labels[queue, task] = _Children(self, queue, task)
        return found

    def started(self, queue: str, task: str, waited: float | None) -> None:
        """Count the start; observe the wait of a first attempt."""
        children = self._children(queue, task)
        children.started.inc()
        if waited is not None:
            children.wait.observe(waited)
        self.running.labels(queue).inc()

    def stopped(self, queue: str) -> None:
        """One attempt fewer running."""
        self.running.labels(queue).dec()

    def finished(self, queue: str, task: str, outcome: Outcome, duration: float | None) -> None:
        """Count the outcome; observe how long the attempt ran."""
        children = self._children(queue, task)
        children.finished[outcome].inc()
        if duration is not None:
            children.duration.observe(duration)

    def renewed(self, count: int) -> None:
        """Count lease renewals."""
        self.renewals.inc(count)

    # -- serving and sampling ------------------------------------------------------------

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Serve ``/metrics`` on `host`:`port` (0: a free port); returns the address bound."""
        try:
            self._server, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as e:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {e.strerror or e}; give each worker "
                "on a host its own --metrics-port (0 picks a free one)"
            ) from e
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    async def sample(self, backlog: Backlog) -> None:
        """Until cancelled: sample the loop's lag, and read the queues' backlog now and then."""
        loop = asyncio.get_running_loop()
        next_pending = 0.0
        while True:
            if loop.time() >= next_pending:
                next_pending = loop.time() + _PENDING_EVERY_S
                await self._read_pending(backlog)
            before = loop.time()
            await asyncio.sleep(_LAG_PROBE_S)
            self.lag.set(max(0.0, loop.time() - before - _LAG_PROBE_S))

    async def _read_pending(self, backlog: Backlog) -> None:
        for queue in self._queues:
            try:
                self.pending.labels(queue).set(await backlog(queue))
            except Exception as e:  # the next read comes soon; the old figure stays
                log.debug("queue %s: cannot read its backlog for the metrics: %r", queue, e)


class _Children:
    """The labelled series of one (queue, task), looked up once."""

    __slots__ = ("duration", "finished", "started", "wait")

    def __init__(self, metrics: WorkerMetrics, queue: str, task: str) -> None:
        self.started = metrics.started_total.labels(queue, task)
        self.duration = metrics.duration.labels(queue, task)
        self.wait = metrics.wait.labels(queue, task)
        self.finished = {o: metrics.finished_total.labels(queue, task, o.value) for o in Outcome}
