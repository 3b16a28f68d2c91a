"""Prometheus metrics of one worker process, served on ``/metrics`` (the ``metrics`` extra).

`WorkerMetrics` is the worker's `JobObserver`: it counts what the worker tells it in plain
Python (`Figures`), samples the event loop's lag and the queues' backlog in the background,
and serves the figures from a thread, so a scrape never waits for the event loop and a job
costs no lock. Each worker has its own registry. docs/observability.md lists the names.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aioq._version import __version__
from aioq.errors import ConfigError
from aioq.metrics._figures import OUTCOMES, Figures

__all__ = ["DURATION_BUCKETS", "WorkerMetrics"]

log = logging.getLogger("aioq.metrics")

#: Bucket bounds (seconds) of the job duration and wait histograms: 1 ms to 10 min.
DURATION_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
)  # fmt: skip
# How often the event loop's lag is sampled, and the queues' backlog read from the server.
LAG_PROBE_S: Final = 0.5
PENDING_EVERY_S: Final = 5.0

Backlog = Callable[[str], Awaitable[int]]


class WorkerMetrics(Figures):
    """The metrics of one worker, and the HTTP server that exposes them."""

    def __init__(
        self, worker_id: str, queues: Sequence[str], concurrency: Callable[[], int]
    ) -> None:
        super().__init__(queues, DURATION_BUCKETS)
        self.worker_id = worker_id
        self.concurrency = concurrency
        self.queues = list(queues)
        self.registry = CollectorRegistry()
        self.registry.register(_Exposition(self))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

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
                next_pending = loop.time() + PENDING_EVERY_S
                await self._read_pending(backlog)
            before = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self.lag = max(0.0, loop.time() - before - LAG_PROBE_S)

    async def _read_pending(self, backlog: Backlog) -> None:
        for queue in self.queues:
            try:
                self.pending[queue] = await backlog(queue)
            except Exception as e:  # the next read comes soon; the old figure stays
                log.debug("queue %s: cannot read its backlog for the metrics: %r", queue, e)


class _Exposition(Collector):
    """The figures as Prometheus families, built at each scrape."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """Every family, from a copy of the current figures."""
        m = self.metrics
        series = list(m.series.items())
        started = CounterMetricFamily(
            "aioq_jobs_started", "Attempts started.", labels=["queue", "task"]
        )
        finished = CounterMetricFamily(
            "aioq_jobs_finished",
            "Jobs settled, by outcome (one count per attempt that ended with one).",
            labels=["queue", "task", "outcome"],
        )
        duration = HistogramMetricFamily(
            "aioq_job_duration_seconds",
            "Seconds an attempt ran, from its start to its outcome.",
            labels=["queue", "task"],
        )
        wait = HistogramMetricFamily(
            "aioq_job_wait_seconds",
            "Seconds from enqueue (a delayed job: its release) to the first attempt's start.",
            labels=["queue", "task"],
        )
        for (queue, task), one in series:
            started.add_metric([queue, task], one.started)
            for outcome, count in zip(OUTCOMES, list(one.finished), strict=True):
                finished.add_metric([queue, task, outcome.value], count)
            duration.add_metric([queue, task], *one.duration.cumulative())
            wait.add_metric([queue, task], *one.wait.cumulative())
        yield from (started, finished, duration, wait)
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        m = self.metrics
        running = GaugeMetricFamily("aioq_jobs_running", "Attempts running now.", labels=["queue"])
        for queue, count in list(m.running.items()):
            running.add_metric([queue], count)
        pending = GaugeMetricFamily(
            "aioq_queue_pending",
            "Jobs of the queue waiting, running or waiting out a retry delay (from its "
            f"consumer, read every {PENDING_EVERY_S:g}s).",
            labels=["queue"],
        )
        for queue, backlog in list(m.pending.items()):
            pending.add_metric([queue], backlog)
        info = GaugeMetricFamily(
            "aioq_worker_info", "The worker's id and version.", labels=["worker", "version"]
        )
        info.add_metric([m.worker_id, __version__], 1)
        yield running
        yield pending
        yield GaugeMetricFamily(
            "aioq_worker_concurrency", "Most jobs the worker runs at once.", m.concurrency()
        )
        yield CounterMetricFamily(
            "aioq_lease_renewals", "Leases of running or waiting jobs renewed.", m.renewals
        )
        yield GaugeMetricFamily(
            "aioq_event_loop_lag_seconds",
            f"How late the event loop ran a timer, sampled every {LAG_PROBE_S}s.",
            m.lag,
        )
        yield info
