"""OpenTelemetry traces: enqueue, attempts and retries of a job in one trace.

The SDK's in-memory exporter collects the spans; the tracer provider is set once per process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nats.aio.client import Client as NatsClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aioq import Aarq, Context

from ..conftest import WorkerFactory
from ..helpers import eventually

_EXPORTER = InMemorySpanExporter()


class _WhileTesting(SimpleSpanProcessor):
    """Exports only during these tests: the provider stays set for the rest of the session."""

    on = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            super().on_end(span)


_PROCESSOR = _WhileTesting(_EXPORTER)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(_PROCESSOR)
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    _WhileTesting.on = True
    yield _EXPORTER
    _WhileTesting.on = False
    _EXPORTER.clear()


def of_job(exporter: InMemorySpanExporter, job_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.attributes and s.attributes.get("aioq.job_id") == job_id
    ]


async def test_one_trace_from_enqueue_through_a_retry_to_success(
    app: Aarq, start_worker: WorkerFactory, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("tests")

    @app.task(retries=2, backoff=0.05)
    async def flaky(ctx: Context) -> None:
        with tracer.start_as_current_span("inside the task"):
            pass
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    await start_worker()
    with tracer.start_as_current_span("request") as request:
        job = await flaky.enqueue()
    found = await eventually(
        lambda: (lambda s: s if len(s) == 3 else None)(of_job(spans, job.id)),
        what="the enqueue's span and two attempts' spans",
    )
    enqueue, first, second = sorted(found, key=lambda s: s.start_time or 0)
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in found if s.context} == {trace_id}
    assert enqueue.kind is SpanKind.PRODUCER
    assert enqueue.parent is not None
    assert enqueue.parent.span_id == request.get_span_context().span_id
    assert enqueue.attributes is not None
    assert enqueue.attributes["aioq.task"] == "flaky"
    assert enqueue.attributes["aioq.queue"] == "default"
    for attempt, span in enumerate((first, second), start=1):
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is not None
        assert enqueue.context is not None
        assert span.parent.span_id == enqueue.context.span_id
        assert span.attributes is not None
        assert span.attributes["aioq.attempt"] == attempt
        assert span.attributes["aioq.task"] == "flaky"
        assert span.attributes["aioq.queue"] == "default"
    assert first.attributes is not None
    assert first.attributes["aioq.outcome"] == "retried"
    assert first.status.status_code is StatusCode.ERROR
    [event] = [e for e in first.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"
    assert second.attributes is not None
    assert second.attributes["aioq.outcome"] == "succeeded"
    assert second.status.status_code is not StatusCode.ERROR
    # The task's own spans are children of its attempt's span.
    inner = [s for s in spans.get_finished_spans() if s.name == "inside the task"]
    assert sorted(s.parent.span_id for s in inner if s.parent) == sorted(
        s.context.span_id for s in (first, second) if s.context
    )


async def test_a_delayed_job_keeps_the_link_to_its_enqueue(
    app: Aarq, start_worker: WorkerFactory, spans: InMemorySpanExporter
) -> None:
    @app.task
    async def later(ctx: Context) -> None:
        pass

    await start_worker(scan_interval=0.05)
    job = await later.with_options(delay=0.1).enqueue()
    found = await eventually(
        lambda: (lambda s: s if len(s) == 2 else None)(of_job(spans, job.id)),
        what="the enqueue's and the attempt's spans",
    )
    enqueue, attempt = sorted(found, key=lambda s: s.start_time or 0)
    assert enqueue.context is not None
    assert attempt.parent is not None
    assert attempt.parent.span_id == enqueue.context.span_id
    assert attempt.attributes is not None
    assert attempt.attributes["aioq.outcome"] == "succeeded"


async def test_a_foreign_publishers_traceparent_is_continued(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient, spans: InMemorySpanExporter
) -> None:
    @app.task
    async def greet(ctx: Context, name: str) -> None:
        pass

    await start_worker()
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    await nc.jetstream().publish(
        f"{app.prefix}.jobs.default",
        b'{"id": "foreign-1", "task": "greet", "args": ["ann"]}',
        headers={"Nats-Msg-Id": "foreign-1", "traceparent": f"00-{trace_id}-{span_id}-01"},
    )
    [attempt] = await eventually(lambda: of_job(spans, "foreign-1"), what="the attempt's span")
    assert attempt.context is not None
    assert attempt.context.trace_id == int(trace_id, 16)
    assert attempt.parent is not None
    assert attempt.parent.span_id == int(span_id, 16)


async def test_enqueue_many_gives_each_job_its_trace_context(
    app: Aarq, start_worker: WorkerFactory, spans: InMemorySpanExporter
) -> None:
    @app.task
    async def one(ctx: Context, n: int) -> None:
        pass

    jobs = await app.enqueue_many([one.prepare(n) for n in range(3)])
    await start_worker()
    for job in jobs:
        found = await eventually(
            lambda job=job: (lambda s: s if len(s) == 2 else None)(of_job(spans, job.id)),
            what=f"the spans of job {job.id}",
        )
        enqueue, attempt = sorted(found, key=lambda s: s.start_time or 0)
        assert attempt.parent is not None
        assert enqueue.context is not None
        assert attempt.parent.span_id == enqueue.context.span_id
