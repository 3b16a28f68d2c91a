"""The job fields on log records: aioq's own lines about a job, and the lines a task logs."""

from __future__ import annotations

import io
import json
import logging

import pytest

from aioq import Aarq, Context
from aioq.logs import JobFields, JsonFormatter

from ..conftest import WorkerFactory
from ..helpers import eventually


async def test_outcome_log_records_carry_the_job_fields(
    app: Aarq, start_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aioq")

    @app.task
    async def hello(ctx: Context) -> None:
        pass

    worker = await start_worker()
    job = await hello.enqueue()
    [found] = await eventually(
        lambda: [r for r in caplog.records if getattr(r, "job_id", None) == job.id],
        what="the outcome's log record",
    )
    assert found.task == "hello"
    assert found.queue == "default"
    assert found.attempt == 1
    assert found.worker_id == worker.id
    assert found.outcome == "succeeded"
    assert found.duration >= 0


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_tasks_own_log_lines_get_its_job_fields(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    mine = logging.getLogger("tests.mine")
    mine.addHandler(handler)
    mine.setLevel(logging.INFO)
    collector = Collector()
    collector.addFilter(JobFields())
    plain = collector.records
    mine.addHandler(collector)

    @app.task
    async def async_task(ctx: Context) -> None:
        mine.info("from the coroutine")

    @app.task
    def thread_task(ctx: Context) -> None:
        mine.info("from the thread")

    try:
        worker = await start_worker()
        first = await async_task.enqueue()
        second = await thread_task.enqueue()
        await eventually(lambda: len(plain) == 2, what="both lines")
        mine.info("outside any job")
    finally:
        mine.removeHandler(handler)
        mine.removeHandler(collector)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    by_message = {line["message"]: line for line in lines}
    assert by_message["from the coroutine"]["job_id"] == first.id
    assert by_message["from the thread"]["job_id"] == second.id
    assert by_message["from the thread"]["task"] == "thread_task"
    assert by_message["from the thread"]["worker_id"] == worker.id
    assert "job_id" not in by_message["outside any job"]
    assert [getattr(r, "job_id", None) for r in plain][2:] == [None]  # the line outside a job
    assert {getattr(r, "job_id", None) for r in plain[:2]} == {first.id, second.id}
