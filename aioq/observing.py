"""Whether the optional trace instrument is on: checked without importing OpenTelemetry."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aioq.task import PreparedJob
    from aioq.tracing import ProducerSpans

__all__ = ["producer_spans", "tracing_configured"]


def tracing_configured() -> bool:
    """Whether this process uses OpenTelemetry: it imported the trace API (to configure it)."""
    return "opentelemetry.trace" in sys.modules


def producer_spans(jobs: Sequence[PreparedJob]) -> ProducerSpans | None:
    """Producer spans of `jobs` about to be published, when tracing is on; else None."""
    if not tracing_configured():
        return None
    from aioq.tracing import ProducerSpans, active

    return ProducerSpans(jobs) if active() else None
