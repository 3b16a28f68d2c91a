"""OpenTelemetry traces across the queue (the ``tracing`` extra).

An enqueue makes a producer span and puts its context in the job message's headers (W3C
``traceparent``); each attempt at the job makes a consumer span continuing it, current while
the task runs. aioq only uses the API: the application configures the SDK and its exporter.
docs/observability.md shows the set-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import Final

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from aioq._version import __version__
from aioq.task import PreparedJob
from aioq.worker.observe import Outcome

__all__ = ["AttemptSpan", "ProducerSpans", "WorkerTracer", "active"]

_SCOPE: Final = "aioq"
_TRACEPARENT: Final = "traceparent"
_NO_PROVIDER: Final = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
# Outcomes whose attempt failed: its span gets an error status.
_FAILED: Final = frozenset((Outcome.RETRIED, Outcome.FAILED, Outcome.CRASHED))


_cached: tuple[trace.TracerProvider, trace.Tracer] | None = None


def _tracer() -> trace.Tracer:
    """The tracer of the current provider, which the application may set after importing aioq.

    Made again only when the provider changes: making one is slow.
    """
    global _cached
    provider = trace.get_tracer_provider()
    if _cached is None or _cached[0] is not provider:
        _cached = (provider, provider.get_tracer(_SCOPE, __version__))
    return _cached[1]


def _unconfigured() -> bool:
    """Whether no SDK is configured: spans would be neither recorded nor exported."""
    return isinstance(trace.get_tracer_provider(), _NO_PROVIDER)


def active(headers: Mapping[str, str] | None = None) -> bool:
    """Whether a span is worth making: an SDK records it, or a trace context goes through.

    With the API alone, a context (the current span's, or `headers`' traceparent) is still
    passed on, so that a foreign publisher's trace continues in the task's own calls.
    """
    if not _unconfigured():
        return True
    if headers is not None:
        return _TRACEPARENT in headers
    return trace.get_current_span().get_span_context().is_valid


class ProducerSpans:
    """The producer spans of jobs being published, and the jobs carrying their context."""

    def __init__(self, jobs: Sequence[PreparedJob]) -> None:
        tracer = _tracer()
        self.spans: list[trace.Span] = []
        #: The jobs, each with its span's context in its headers.
        self.jobs: list[PreparedJob] = []
        for job in jobs:
            span = tracer.start_span(
                f"enqueue {job.task}",
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": job.queue,
                    "messaging.message.id": job.job_id,
                    "aioq.task": job.task,
                    "aioq.queue": job.queue,
                    "aioq.job_id": job.job_id,
                },
            )
            headers = dict(job.headers or {})
            propagate.inject(headers, context=trace.set_span_in_context(span))
            self.spans.append(span)
            self.jobs.append(dataclasses.replace(job, headers=headers))

    def end(self, outcomes: Sequence[bool | BaseException]) -> None:
        """End each span with its job's outcome: duplicate flag, or the error."""
        for span, outcome in zip(self.spans, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                span.record_exception(outcome)
                span.set_status(Status(StatusCode.ERROR, f"{type(outcome).__name__}: {outcome}"))
            else:
                span.set_attribute("aioq.duplicate", outcome)
            span.end()


class WorkerTracer:
    """Makes the consumer span of each attempt, continuing the trace of its message."""

    def begin(
        self,
        headers: Mapping[str, str] | None,
        *,
        task: str,
        queue: str,
        job_id: str,
        attempt: int,
    ) -> AttemptSpan | None:
        """Start the attempt's span, a child of the enqueue's, current in the running task.

        None when the span would be neither recorded nor carry a trace context on.
        """
        if not active(headers or {}):
            return None
        parent = propagate.extract(headers) if headers else None
        span = _tracer().start_span(
            f"run {task}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": queue,
                "messaging.message.id": job_id,
                "aioq.task": task,
                "aioq.queue": queue,
                "aioq.job_id": job_id,
                "aioq.attempt": attempt,
            },
        )
        return AttemptSpan(span, context.attach(trace.set_span_in_context(span)))


class AttemptSpan:
    """One attempt's span; ends once, with the outcome and the error."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span, token: Token[context.Context]) -> None:
        self._span = span
        self._token: Token[context.Context] | None = token

    def end(self, outcome: Outcome | None, error: BaseException | None = None) -> None:
        """Record the outcome and error, end the span, and make it no longer current."""
        if self._token is None:
            return
        token, self._token = self._token, None
        span = self._span
        span.set_attribute("aioq.outcome", outcome.value if outcome else "returned")
        if error is not None:
            span.record_exception(error)
        if outcome in _FAILED:
            message = f"{type(error).__name__}: {error}" if error else outcome.value
            span.set_status(Status(StatusCode.ERROR, message))
        span.end()
        context.detach(token)
