"""A worker's Prometheus metrics, scraped over HTTP after known jobs."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

import pytest
from nats.aio.client import Client as NatsClient
from prometheus_client.parser import text_string_to_metric_families

from aioq import Aarq, Context
from aioq.errors import ConfigError
from aioq.options import WorkerOptions
from aioq.worker import Worker

from ..conftest import WorkerFactory
from ..helpers import eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(address: tuple[str, int]) -> tuple[str, Samples]:
    """The metrics page of a worker, and its samples by name and labels."""
    host, port = address
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_a_scrape_counts_known_jobs_by_outcome(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    app.queue("default", ack_wait=0.6)  # leases renewed every 0.2 s
    release = asyncio.Event()
    failures: list[int] = []

    @app.task(retries=2, backoff=0.05)
    async def ok(ctx: Context) -> None:
        pass

    @app.task(retries=2, backoff=0.05)
    async def flaky(ctx: Context) -> None:
        if not failures:
            failures.append(ctx.attempt)
            raise RuntimeError("first attempt fails")

    @app.task(retries=0)
    async def broken(ctx: Context) -> None:
        raise ValueError("always fails")

    @app.task
    async def slow(ctx: Context) -> None:
        await release.wait()

    worker = await start_worker(concurrency=3, metrics_port=0)
    assert worker.metrics_address is not None
    assert worker.metrics_address[0] == "127.0.0.1"
    for job in (ok, ok, flaky, broken, slow):
        await job.enqueue()
    js = nc.jetstream()
    await js.publish(f"{app.prefix}.jobs.default", b'{"task": "no_such_task"}')
    await js.publish(f"{app.prefix}.jobs.default", b"\xffnot json")

    async def renewed() -> bool:
        _, samples = await asyncio.to_thread(scrape, worker.metrics_address or ("", 0))
        return (value(samples, "aioq_lease_renewals_total") or 0) >= 1

    await eventually(renewed, what="a lease renewal of the slow job")
    release.set()

    async def settled() -> Samples | None:
        _, samples = await asyncio.to_thread(scrape, worker.metrics_address or ("", 0))
        done = value(samples, "aioq_jobs_finished_total", queue="default", task="slow",
                     outcome="succeeded")  # fmt: skip
        bad = value(samples, "aioq_jobs_finished_total", queue="default", task="(unknown)",
                    outcome="bad_input")  # fmt: skip
        return samples if done == 1 and bad == 2 and worker.stats.processed >= 4 else None

    samples = await eventually(settled, what="every job settled in the metrics")
    finished = {
        (dict(labels)["task"], dict(labels)["outcome"]): v
        for (name, labels), v in samples.items()
        if name == "aioq_jobs_finished_total" and v
    }
    assert finished == {
        ("ok", "succeeded"): 2,
        ("flaky", "retried"): 1,
        ("flaky", "succeeded"): 1,
        ("broken", "failed"): 1,
        ("slow", "succeeded"): 1,
        ("(unknown)", "bad_input"): 2,
    }
    started = {
        dict(labels)["task"]: v
        for (name, labels), v in samples.items()
        if name == "aioq_jobs_started_total" and v
    }
    assert started == {"ok": 2, "flaky": 2, "broken": 1, "slow": 1}
    # Every attempt's duration; the wait of first attempts only.
    assert value(samples, "aioq_job_duration_seconds_count", queue="default", task="flaky") == 2
    assert value(samples, "aioq_job_wait_seconds_count", queue="default", task="flaky") == 1
    assert value(samples, "aioq_job_duration_seconds_count", queue="default", task="ok") == 2
    slow_time = value(samples, "aioq_job_duration_seconds_sum", queue="default", task="slow")
    assert slow_time is not None
    assert slow_time > 0
    assert value(samples, "aioq_jobs_running", queue="default") == 0
    assert value(samples, "aioq_worker_concurrency") == 3
    lag = value(samples, "aioq_event_loop_lag_seconds")
    assert lag is not None
    assert lag >= 0
    assert value(samples, "aioq_worker_info", worker=worker.id, version=aioq_version()) == 1

    async def pending_zero() -> bool:
        _, now = await asyncio.to_thread(scrape, worker.metrics_address or ("", 0))
        return value(now, "aioq_queue_pending", queue="default") == 0

    await eventually(pending_zero, timeout=15, what="the backlog read back as 0")


def aioq_version() -> str:
    from aioq import __version__

    return __version__


async def test_the_pending_gauge_counts_a_waiting_backlog(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    @app.task(queue="other")
    async def later(ctx: Context) -> None:
        pass

    for _ in range(3):
        await later.enqueue()
    # A rate limit of 0 from the start: the three jobs stay waiting (set after the start, it
    # could come after the first fetch).
    worker = await start_worker(queues=["default", "other"], metrics_port=0, rate_limit=0)

    async def three() -> bool:
        _, samples = await asyncio.to_thread(scrape, worker.metrics_address or ("", 0))
        return value(samples, "aioq_queue_pending", queue="other") == 3

    await eventually(three, what="three jobs pending on the queue")


async def test_a_busy_port_is_one_clear_error(app: Aarq) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = Worker(app, options=WorkerOptions.for_tests(metrics_port=port))
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            await worker.run()
    assert not app.connected


async def test_two_workers_serve_on_their_own_ports(app: Aarq, start_worker: WorkerFactory) -> None:
    one = await start_worker(metrics_port=0)
    two = await start_worker(metrics_port=0)
    assert one.metrics_address
    assert two.metrics_address
    assert one.metrics_address[1] != two.metrics_address[1]
    _, first = await asyncio.to_thread(scrape, one.metrics_address)
    _, second = await asyncio.to_thread(scrape, two.metrics_address)
    assert value(first, "aioq_worker_info", worker=one.id, version=aioq_version()) == 1
    assert value(second, "aioq_worker_info", worker=two.id, version=aioq_version()) == 1


@pytest.mark.parametrize("port", [-1, 65536, "9000", True])
def test_metrics_port_is_validated(port: object) -> None:
    with pytest.raises(ConfigError, match="metrics_port must be a port number"):
        WorkerOptions(metrics_port=port)  # type: ignore[arg-type]
