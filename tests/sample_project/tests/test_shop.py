"""The shop's task tests: only aioq's public pytest fixtures, a real nats-server underneath."""

from __future__ import annotations

import pytest
from shop.tasks import app, charge, export_report, place_order, send_receipt

from aioq import Aarq, JobFailedError
from aioq.testing.pytest_plugin import WorkerFactory
from aioq.wire import JobState


async def test_the_app_is_bound_to_the_test_server(aioq_app: Aarq, aioq_url: str) -> None:
    assert aioq_app is app  # the module's own app, not a copy
    assert app.settings.servers == [aioq_url]
    assert app.prefix != "shop"


async def test_a_job_returns_its_result(aioq_app: Aarq, aioq_worker: WorkerFactory) -> None:
    await aioq_worker(["orders", "email"])
    job = await place_order.enqueue(1, ["book", "pen"], "ada@example.com")
    assert await job.result(timeout=10) == 2


async def test_follow_up_jobs_run_until_the_queues_are_empty(
    aioq_app: Aarq, aioq_worker: WorkerFactory
) -> None:
    for order_id in range(3):
        await place_order.enqueue(order_id, ["book"], f"user{order_id}@example.com")
    worker = await aioq_worker.run_until_idle(["orders", "email"])
    assert sorted(app.state.outbox) == [
        (f"user{i}@example.com", f"receipt for order {i}") for i in range(3)
    ]
    assert worker.stats.processed == 6


async def test_a_failed_attempt_is_retried(aioq_app: Aarq, aioq_worker: WorkerFactory) -> None:
    await aioq_worker(["payments"])
    job = await charge.enqueue(7, 25_000)
    assert await job.result(timeout=10) == "charged 25000 on attempt 2"
    assert (await job.status()).attempts == 2


async def test_a_declined_payment_is_not_retried(
    aioq_app: Aarq, aioq_worker: WorkerFactory
) -> None:
    await aioq_worker(["payments"])
    job = await charge.enqueue(8, -1)
    with pytest.raises(JobFailedError, match="negative amount"):
        await job.result(timeout=10)
    assert (await job.status()).attempts == 1
    assert [entry.letter.id for entry in await app.dead.list("payments")] == [job.id]


async def test_a_deployment_stop_finishes_running_jobs(
    aioq_app: Aarq, aioq_worker: WorkerFactory
) -> None:
    worker = await aioq_worker(["reports"], concurrency=2)
    jobs = [await export_report.enqueue(n) for n in range(5)]
    report = await worker.simulate_shutdown(jobs, running_at_least=2)
    report.assert_clean()  # the running jobs finished, nothing was lost
    assert report.in_flight_at_stop == 2
    assert len(report.finished) == 2
    assert len(report.waiting) == 3  # still queued, for the next worker
    assert all(report.states[job.id] is JobState.SUCCEEDED for job in report.finished)

    await aioq_worker.run_until_idle(["reports"])  # a new worker takes over the rest
    assert [await job.result() for job in jobs] == list(range(5))


async def test_each_test_has_its_own_queues(aioq_app: Aarq, aioq_worker: WorkerFactory) -> None:
    await send_receipt.enqueue(99, "left@example.com")  # no worker runs it in this test
    (email,) = [q for q in await app.queues() if q.name == "email"]
    assert email.pending == 1
