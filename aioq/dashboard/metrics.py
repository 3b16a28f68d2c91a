"""The queue and worker figures in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["render_metrics"]

_QUEUE_GAUGES = (
    ("queued", "Jobs waiting in the queue."),
    ("running", "Jobs delivered to a worker and not yet settled, less those retrying."),
    ("retrying", "Jobs waiting out a retry delay (seen by this dashboard)."),
    ("delayed", "Delayed jobs held until their time."),
    ("dead", "Dead letters of the queue."),
    ("workers", "Workers alive or stale that serve the queue."),
)
_WORKER_COUNTERS = (
    ("processed", "Jobs the worker finished."),
    ("failed", "Jobs that failed on the worker."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(
    queues: Iterable[dict[str, Any]], workers: Iterable[dict[str, Any]], live_pages: int = 0
) -> str:
    """Queue gauges, worker liveness counts and per-worker counters as exposition text."""
    queues, workers = list(queues), list(workers)
    lines = [
        "# HELP aioq_dashboard_live_pages Pages following this dashboard's live feed.",
        "# TYPE aioq_dashboard_live_pages gauge",
        f"aioq_dashboard_live_pages {live_pages}",
    ]
    for field, text in _QUEUE_GAUGES:
        lines += [f"# HELP aioq_queue_{field} {text}", f"# TYPE aioq_queue_{field} gauge"]
        lines += [f'aioq_queue_{field}{{queue="{_label(q["name"])}"}} {q[field]}' for q in queues]
    lines += [
        "# HELP aioq_queue_paused 1 while the queue is paused.",
        "# TYPE aioq_queue_paused gauge",
    ]
    lines += [
        f'aioq_queue_paused{{queue="{_label(q["name"])}"}} {int(q["paused"])}' for q in queues
    ]
    lines += ["# HELP aioq_workers Workers by liveness.", "# TYPE aioq_workers gauge"]
    for status in ("alive", "stale", "dead"):
        count = sum(1 for w in workers if w["status"] == status)
        lines.append(f'aioq_workers{{status="{status}"}} {count}')
    for field, text in _WORKER_COUNTERS:
        name = f"aioq_worker_{field}_total"
        lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
        for w in workers:
            if w["status"] != "dead":
                lines.append(f'{name}{{worker="{_label(w["id"])}"}} {w[field]}')
    lines += [
        "# HELP aioq_worker_active Jobs the worker runs now.",
        "# TYPE aioq_worker_active gauge",
    ]
    lines += [
        f'aioq_worker_active{{worker="{_label(w["id"])}"}} {w["active"]}'
        for w in workers
        if w["status"] != "dead"
    ]
    return "\n".join(lines) + "\n"
