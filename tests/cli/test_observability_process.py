"""``aioq worker --metrics-port 0 --log-format json``: a real worker process's metrics and logs."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from typing import Any

from aioq import Aarq

from ..nats.test_metrics import scrape, value
from ..procs import APP_PATH, Procs, poll


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_a_worker_process_serves_metrics_and_logs_json(
    client: Aarq, procs: Procs, nats_url: str
) -> None:
    worker = procs.start(
        "worker", APP_PATH, "-s", nats_url, "--metrics-port", "0", "--log-format", "json"
    )
    await poll(lambda: "metrics on http://" in worker.log(), 20, "the metrics address", worker)
    found = re.search(r"metrics on http://([\d.]+):(\d+)/metrics", worker.log())
    assert found is not None
    address = (found[1], int(found[2]))
    assert address[0] == "127.0.0.1"
    for n in range(3):
        await client.tasks["echo"].enqueue(n)

    async def three() -> bool:
        _, samples = await asyncio.to_thread(scrape, address)
        done = value(samples, "aioq_jobs_finished_total", queue="default", task="echo",
                     outcome="succeeded")  # fmt: skip
        return done == 3

    await poll(three, 20, "three successes in the scraped metrics", worker)
    await poll(lambda: "succeeded" in worker.log(), 5, "the outcome lines", worker)
    worker.send(signal.SIGTERM)
    await poll(lambda: worker.returncode is not None, 20, "the worker's exit", worker)
    assert worker.returncode == 0
    lines = json_lines(worker.log())
    assert lines, worker.log()
    assert all(line.keys() >= {"time", "level", "logger", "message"} for line in lines)
    outcomes = [line for line in lines if line.get("outcome") == "succeeded"]
    assert len(outcomes) == 3
    first = outcomes[0]
    assert first["task"] == "echo"
    assert first["queue"] == "default"
    assert first["attempt"] == 1
    assert first["duration"] >= 0
    assert first["level"] == "info"
    assert first["logger"] == "aioq.worker"
    assert re.fullmatch(r"[0-9a-f-]{36}", first["worker_id"])
    assert first["job_id"]
    started = [line for line in lines if line["message"].startswith("worker ") and "started" in
               line["message"]]  # fmt: skip
    assert started[0]["worker_id"] == first["worker_id"]
