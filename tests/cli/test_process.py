"""Real worker processes (``python -m aioq worker``) under SIGTERM, SIGINT and SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import NoKeysError

from aioq import Aarq
from aioq.worker.execute import UNSETTLED_DELIVERIES

from ..apps.proc_app import TASK_RETRIES
from ..procs import APP_PATH, Proc, Procs, poll, read_events

pytestmark = pytest.mark.timeout(30)


def start_worker(
    procs: Procs, url: str, *options: str, ack_wait: float = 2.0, grace: float = 20.0
) -> Proc:
    return procs.start(
        "worker",
        APP_PATH,
        "-s",
        url,
        "--shutdown-grace",
        str(grace),
        *options,
        env={"AIOQ_TEST_ACK_WAIT": str(ack_wait)},
    )


def of(events: Path, kind: str, job: str | None = None) -> list[dict[str, Any]]:
    return [
        e for e in read_events(events) if e["event"] == kind and (job is None or e["job"] == job)
    ]


async def queue_drained(nc: NatsClient, app: Aarq, *queues: str) -> None:
    """Wait until the job stream is empty and no consumer holds or owes a delivery."""
    js = nc.jetstream()
    state: dict[str, object] = {}

    async def check() -> bool:
        stream = await js.stream_info(app.names.jobs_stream)
        state["messages"] = stream.state.messages
        for queue in queues:
            consumer = await js.consumer_info(app.names.jobs_stream, app.names.consumer(queue))
            state[queue] = (consumer.num_pending, consumer.num_ack_pending)
            if consumer.num_pending or consumer.num_ack_pending:
                return False
        return stream.state.messages == 0

    deadline = time.monotonic() + 10
    while not await check():
        assert time.monotonic() < deadline, f"queue not drained: {state}"
        await asyncio.sleep(0.1)


async def worker_keys(nc: NatsClient, app: Aarq) -> list[str]:
    kv = await nc.jetstream().key_value(app.names.workers_bucket)
    try:
        return list(await kv.keys())
    except NoKeysError:
        return []


# Plain-function tasks run in threads: more of them than asyncio's default executor has threads
# (cpu_count + 4) must still all run at once, and abandoned ones must not hold the exit.
TASKS = pytest.mark.parametrize("task", ["sleep_for", "sleep_in_thread"], ids=["async", "sync"])


@TASKS
async def test_sigterm_lets_running_jobs_finish(
    client: Aarq, procs: Procs, nats_url: str, nc: NatsClient, events: Path, task: str
) -> None:
    n = 8
    worker = start_worker(procs, nats_url, "-c", str(n))
    await worker.wait_log(f"started: queues=default concurrency={n}")

    keys = await worker_keys(nc, client)
    assert len(keys) == 1
    kv = await nc.jetstream().key_value(client.names.workers_bucket)
    beat = json.loads((await kv.get(keys[0])).value or b"")
    assert (beat["id"], beat["pid"], beat["concurrency"]) == (keys[0], worker.pid, n)

    jobs = await client.enqueue_many(client.get_task(task).prepare(2.0) for _ in range(n))
    await poll(lambda: len(of(events, "start")) == n, 10, f"{n} job starts", worker)
    assert not of(events, "finish"), "jobs finished before the signal: make them longer"

    worker.send(signal.SIGTERM)
    assert await worker.wait_exit(timeout=15) == 0

    ids = sorted(j.id for j in jobs)
    assert sorted(e["job"] for e in of(events, "finish")) == ids
    starts = of(events, "start")
    assert sorted(e["job"] for e in starts) == ids, "a job started twice"
    assert {e["attempt"] for e in starts} == {1}
    assert f"stopping, waiting for {n} running jobs" in worker.log()
    assert await worker_keys(nc, client) == []
    await queue_drained(nc, client, "default")
    consumer = await nc.jetstream().consumer_info(client.names.jobs_stream, "default")
    assert consumer.num_redelivered == 0


@TASKS
async def test_grace_exceeded_requeues_at_once(
    client: Aarq, procs: Procs, nats_url: str, nc: NatsClient, events: Path, task: str
) -> None:
    # A 30 s lease: jobs that came back within a few seconds were handed back, not expired.
    n = 3
    a = start_worker(procs, nats_url, "-c", str(n), ack_wait=30, grace=0.5)
    await a.wait_log("started:")
    sleep = client.get_task(task)
    jobs = await client.enqueue_many(sleep.prepare(10, later=0.1) for _ in range(n))
    await poll(lambda: len(of(events, "start")) == n, 10, f"{n} job starts", a)

    signalled = time.time()
    a.send(signal.SIGTERM)
    assert await a.wait_exit(timeout=8) == 0
    assert time.time() - signalled < 8
    assert a.log().count("cancelled by shutdown, returned to the queue") == n
    assert not of(events, "finish")

    b = start_worker(procs, nats_url, "-c", str(n), ack_wait=30)
    await poll(lambda: len(of(events, "finish")) == n, 10, f"{n} jobs finished by B", b)
    finishes = of(events, "finish")
    assert sorted(e["job"] for e in finishes) == sorted(j.id for j in jobs)
    assert {(e["attempt"], e["pid"]) for e in finishes} == {(2, b.pid)}
    assert max(e["t"] for e in finishes) - signalled < 15  # ack_wait is 30 s
    b.send(signal.SIGTERM)
    assert await b.wait_exit(timeout=15) == 0
    await queue_drained(nc, client, "default")
    assert await worker_keys(nc, client) == []


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_second_signal_forces_the_stop(
    client: Aarq,
    procs: Procs,
    nats_url: str,
    nc: NatsClient,
    events: Path,
    second: signal.Signals,
) -> None:
    a = start_worker(procs, nats_url, "-c", "2", ack_wait=30, grace=30)
    await a.wait_log("started:")
    sleep_for = client.get_task("sleep_for")
    jobs = await client.enqueue_many(sleep_for.prepare(10, later=0.1) for _ in range(2))
    await poll(lambda: len(of(events, "start")) == 2, 10, "2 job starts", a)

    a.send(signal.SIGTERM)
    await a.wait_log("stopping, waiting for 2 running jobs")
    signalled = time.time()
    a.send(second)
    assert await a.wait_exit(timeout=8) == 0
    assert time.time() - signalled < 8
    assert "second stop request" in a.log()
    assert a.log().count("cancelled by shutdown, returned to the queue") == 2

    b = start_worker(procs, nats_url, "-c", "2", ack_wait=30)
    await poll(lambda: len(of(events, "finish")) == 2, 10, "2 jobs finished by B", b)
    finishes = of(events, "finish")
    assert sorted(e["job"] for e in finishes) == sorted(j.id for j in jobs)
    assert {(e["attempt"], e["pid"]) for e in finishes} == {(2, b.pid)}
    b.send(signal.SIGTERM)
    assert await b.wait_exit(timeout=15) == 0
    await queue_drained(nc, client, "default")


async def test_sigkill_mid_job_loses_nothing(
    client: Aarq, procs: Procs, nats_url: str, nc: NatsClient, events: Path
) -> None:
    a = start_worker(procs, nats_url, "-c", "4")
    await a.wait_log("started:")
    sleep_for = client.get_task("sleep_for")
    jobs = await client.enqueue_many(sleep_for.prepare(1.0, later=0.2) for _ in range(20))
    await poll(lambda: len(of(events, "start")) >= 4, 10, "A running 4 jobs", a)

    a.send(signal.SIGKILL)
    assert await a.wait_exit(timeout=10) == -signal.SIGKILL
    finished_by_a = {e["job"] for e in of(events, "finish")}
    killed = {e["job"] for e in of(events, "start") if e["job"] not in finished_by_a}
    assert killed, "A finished every job it started before it was killed"

    b = start_worker(procs, nats_url, "-c", "8")
    ids = {j.id for j in jobs}
    await poll(lambda: {e["job"] for e in of(events, "finish")} == ids, 15, "all 20 jobs", b)
    for job in killed:
        redone = of(events, "finish", job)
        assert [(e["attempt"], e["pid"]) for e in redone] == [(2, b.pid)], redone
    b.send(signal.SIGTERM)
    assert await b.wait_exit(timeout=15) == 0
    await queue_drained(nc, client, "default")


async def test_job_that_kills_its_worker_is_dead_lettered(
    client: Aarq, procs: Procs, nats_url: str, nc: NatsClient, events: Path
) -> None:
    js = nc.jetstream()
    echo, kill_worker = client.get_task("echo"), client.get_task("kill_worker")
    before = await echo.enqueue("before")
    poison = await kill_worker.enqueue()
    after = await echo.enqueue("after")
    # Every allowed attempt and the unsettled allowance crash; the next delivery gives up.
    deliveries = TASK_RETRIES + 1 + UNSETTLED_DELIVERIES + 1

    async def dead_letters() -> int:
        return (await js.stream_info(client.names.dead_stream)).state.messages

    deaths = 0
    worker: Proc | None = None
    for _ in range(deliveries + 1):  # bounded: a worker per delivery, and one spare
        # One job at a time, so the crash takes no innocent job down with it. A 1 s lease
        # brings the poison job back quickly after each crash.
        worker = start_worker(procs, nats_url, "-c", "1", ack_wait=1)
        await worker.wait_log("started:")
        deadline = time.monotonic() + 10
        while worker.returncode is None and not await dead_letters():
            assert time.monotonic() < deadline, worker.log()
            await asyncio.sleep(0.05)
        if worker.returncode is None:
            break
        assert worker.returncode == -signal.SIGKILL, worker.log()
        deaths += 1
    assert worker is not None

    assert deaths == TASK_RETRIES + 1 + UNSETTLED_DELIVERIES
    assert [e["attempt"] for e in of(events, "start", poison.id)] == list(range(1, deaths + 1))
    assert not of(events, "finish", poison.id)
    # A redelivered job comes before a new one: when each worker takes more than the lease to
    # start, the poison job is first every time, and the last worker runs `after` only now.
    for job in (before, after):
        await poll(lambda j=job: of(events, "finish", j.id), 5, f"job {job.id} finished", worker)
        assert len(of(events, "finish", job.id)) == 1
    await poll(lambda: "dead-lettered: crashed" in worker.log(), 5, "the DLQ log line", worker)

    info = await js.stream_info(client.names.dead_stream)
    assert info.state.messages == 1
    record = json.loads((await js.get_msg(client.names.dead_stream, info.state.first_seq)).data)
    assert record["id"] == poison.id
    assert record["task"] == "kill_worker"
    assert record["reason"] == "crashed"
    assert record["attempts"] == deliveries
    worker.send(signal.SIGTERM)
    assert await worker.wait_exit(timeout=15) == 0
    await queue_drained(nc, client, "default")


async def test_jobs_arriving_during_stop_are_handed_back(
    client: Aarq, procs: Procs, nats_url: str, events: Path
) -> None:
    # SIGSTOP freezes an idle worker with its pull open; the server sends it jobs that it
    # reads only after SIGTERM + SIGCONT, while it stops. They must come back at once, not
    # after the 30 s lease.
    echo = client.get_task("echo")
    ids: set[str] = set()
    for _ in range(3):
        a = start_worker(procs, nats_url, "-c", "4", ack_wait=30)
        await a.wait_log("started:")
        await asyncio.sleep(0.2)  # let it open its lingering pull
        a.send(signal.SIGSTOP)
        ids |= {job.id for job in await client.enqueue_many(echo.prepare(i) for i in range(3))}
        await asyncio.sleep(0.2)
        a.send(signal.SIGTERM)
        a.send(signal.SIGCONT)
        assert await a.wait_exit(timeout=10) == 0
    b = start_worker(procs, nats_url, "-c", "4", ack_wait=30)
    await poll(
        lambda: {e["job"] for e in of(events, "finish")} >= ids, 6, "every job, within 6 s", b
    )


async def test_crash_takes_no_batch_mate_down(
    client: Aarq, procs: Procs, nats_url: str, nc: NatsClient, events: Path
) -> None:
    # Jobs fetched in one batch with a job that ends its worker die with it, and come back
    # together. Run one at a time after that, only the crasher uses up its deliveries.
    js = nc.jetstream()
    sleep_for, exit_worker = client.get_task("sleep_for"), client.get_task("exit_worker")
    innocents = list(await client.enqueue_many(sleep_for.prepare(0.3) for _ in range(3)))
    crasher = await exit_worker.enqueue()
    innocents.append(await sleep_for.enqueue(0.3))
    ids = {job.id for job in innocents}

    async def dead_letters() -> int:
        return (await js.stream_info(client.names.dead_stream)).state.messages

    def finished() -> set[str]:
        return {e["job"] for e in of(events, "finish")}

    deaths = 0
    worker: Proc | None = None
    for _ in range(TASK_RETRIES + UNSETTLED_DELIVERIES + 4):  # bounded: a worker per crash
        worker = start_worker(procs, nats_url, "-c", "8", ack_wait=1)
        await worker.wait_log("started:")
        deadline = time.monotonic() + 10
        while worker.returncode is None and not (await dead_letters() and finished() >= ids):
            assert time.monotonic() < deadline, worker.log()
            await asyncio.sleep(0.05)
        if worker.returncode is None:
            break
        assert worker.returncode == 3, worker.log()
        deaths += 1
    assert worker is not None
    assert worker.returncode is None, "the crasher was never dead-lettered"

    assert deaths == TASK_RETRIES + 1 + UNSETTLED_DELIVERIES
    assert (await dead_letters()) == 1
    for job in innocents:
        assert len(of(events, "finish", job.id)) == 1
        assert (await job.status()).state == "succeeded"
    info = await js.stream_info(client.names.dead_stream)
    dead = json.loads((await js.get_msg(client.names.dead_stream, info.state.first_seq)).data)
    assert (dead["id"], dead["reason"]) == (crasher.id, "crashed")
    worker.send(signal.SIGTERM)
    assert await worker.wait_exit(timeout=15) == 0
    await queue_drained(nc, client, "default")


async def test_frozen_worker_does_not_overwrite_a_newer_attempt(
    client: Aarq, procs: Procs, nats_url: str, events: Path
) -> None:
    sleep_for = client.get_task("sleep_for")
    a = start_worker(procs, nats_url, "-c", "2", ack_wait=1)
    await a.wait_log("started:")
    job = await sleep_for.enqueue(0.5, later=0.1)
    await poll(lambda: of(events, "start", job.id), 10, "A starting the job", a)
    a.send(signal.SIGSTOP)  # frozen past its lease: the job goes to B
    try:
        b = start_worker(procs, nats_url, "-c", "2", ack_wait=1)
        await poll(lambda: of(events, "finish", job.id), 10, "B finishing the job", b)
        await job.result(timeout=10)
        # Attempt 2, or 3 if the server sent attempt 2 to the frozen A's open pull.
        newer = of(events, "finish", job.id)[0]["attempt"]
        assert newer > 1
        assert (await job.status()).attempts == newer
    finally:
        a.send(signal.SIGCONT)
    # A's attempt ends now; its outcome must not replace the newer attempt's record.
    await a.wait_log(f"job {job.id} task=sleep_for ran twice: attempt 1")
    assert [e["attempt"] for e in of(events, "finish", job.id)] == [newer, 1]
    status = await job.status()
    assert (status.attempts, status.state) == (newer, "succeeded")
    for worker in (a, b):
        worker.send(signal.SIGTERM)
        assert await worker.wait_exit(timeout=15) == 0
