"""The worker's optional instruments: Prometheus metrics and OpenTelemetry traces.

Each is imported only when it is on: metrics when a port is given, traces when the process
has imported OpenTelemetry (so configured it); otherwise nothing optional is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aioq.errors import ConfigError
from aioq.observing import tracing_configured
from aioq.options import WorkerOptions
from aioq.worker.observe import AttemptTracer

if TYPE_CHECKING:
    from aioq.metrics import WorkerMetrics

__all__ = ["attempt_tracer", "open_metrics"]


def open_metrics(
    options: WorkerOptions, worker_id: str, queues: Sequence[str], concurrency: Callable[[], int]
) -> WorkerMetrics | None:
    """The worker's metrics if `options` ask for them (not served yet), else None."""
    if options.metrics_port is None:
        return None
    try:
        from aioq.metrics import WorkerMetrics
    except ImportError as e:
        raise ConfigError(
            f"metrics need prometheus-client ({e}); install it with: pip install "
            "'aioq-nats[metrics]'"
        ) from e
    return WorkerMetrics(worker_id, queues, concurrency)


def attempt_tracer() -> AttemptTracer | None:
    """A span per attempt when the process uses OpenTelemetry, else None (no cost)."""
    if not tracing_configured():
        return None
    from aioq.tracing import WorkerTracer

    return WorkerTracer()
