"""Every example in examples/ runs green against the session's nats-server.

The scripts run as a user runs them (``NATS_URL=... python examples/X.py``); the web app is
also called through Starlette's TestClient, and the Node.js publisher enqueues a job that a
Python worker runs. The cron and flow-control examples are run by test_scheduling_examples.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from aioq import Aarq, Worker
from aioq.embedded import EmbeddedNats
from aioq.testing.harness import bind_app
from aioq.testing.pytest_plugin import AppFactory, WorkerFactory

from ..procs import ROOT, cli_env

pytestmark = pytest.mark.timeout(90)

NODE_DIR = ROOT / "examples" / "node"


@pytest.fixture(scope="session")
def aioq_server(nats_server: EmbeddedNats) -> EmbeddedNats:
    """The plugin's fixtures use the session server of tests/conftest.py here."""
    return nats_server


def run_example(script: str, url: str) -> str:
    result = subprocess.run(
        [sys.executable, f"examples/{script}"],
        cwd=ROOT,
        env=cli_env(NATS_URL=url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return result.stdout


def test_quickstart(nats_url: str) -> None:
    out = run_example("quickstart.py", nats_url)
    assert "add(2, 3) = 5" in out
    assert re.search(r"hello, linus \(job \w+, attempt 1\)", out), out
    assert "last job: succeeded, attempts=1" in out
    assert out.endswith("done\n")


def test_email_queue_retries_rate_limit_and_dead_letters(nats_url: str) -> None:
    out = run_example("email_queue.py", nats_url)
    assert "enqueued 15 emails; the same one again is a duplicate: True" in out
    sent = re.search(r"sent 14 emails in ([\d.]+)s \(at most 10 per second\)", out)
    assert sent, out
    # 17 starts (15 jobs, 2 retries) at 10 per second, bursts of 10: at least 0.7 s.
    assert float(sent.group(1)) >= 0.6, out
    assert "retried: busy1@example.com, busy2@example.com" in out
    assert "failed without retry: job newsletter-42-" in out
    assert re.search(r"dead letter: newsletter-42-\w+ reason=failed error=InvalidAddress", out)


def test_cpu_bound_thread_and_process_pool(nats_url: str) -> None:
    out = run_example("cpu_bound.py", nats_url)
    assert "fib_in_process: 75025" in out
    assert "fib_in_process: 121393" in out
    digests = re.findall(r"digest_(?:in_thread|sync): (\w+)", out)
    assert len(digests) == 2
    assert digests[0] == digests[1]
    assert "worst event-loop lag" in out


def test_web_app_demo_script(nats_url: str) -> None:
    out = run_example("web_app.py", nats_url)
    assert "POST /signup -> 202" in out
    assert "'state': 'succeeded'" in out


def test_sync_producer_wsgi_app_enqueues_from_request_threads(nats_url: str) -> None:
    out = run_example("sync_producer.py", nats_url)
    assert "POST /signup without email -> 422 email is required" in out
    job_ids = re.findall(r"POST /signup -> 202 job (\w+)", out)
    assert len(set(job_ids)) == 3, out
    for name, email in [("Ada", "ada"), ("Alan", "alan"), ("Grace", "grace")]:
        assert f"welcome mail sent to {name} <{email}@example.com>" in out
    assert out.endswith("done\n")


def test_web_app_endpoint_enqueues_a_job_a_worker_runs(nats_url: str) -> None:
    from examples import web_app

    binding = bind_app(web_app.app, nats_url)
    try:
        with TestClient(web_app.web) as client:
            # The worker runs in the TestClient's event loop, where the lifespan connected.
            worker = Worker(web_app.app, ["signup"], handle_signals=False, shutdown_grace=5)
            running = client.portal.start_task_soon(worker.run)
            try:
                bad = client.post("/signup", json={"name": "nobody"})
                assert bad.status_code == 422
                response = client.post("/signup", json={"email": "ada@example.com", "name": "Ada"})
                assert response.status_code == 202
                job_id = response.json()["job_id"]
                deadline = time.monotonic() + 15
                status = client.get(f"/jobs/{job_id}").json()
                while status["state"] != "succeeded" and time.monotonic() < deadline:
                    time.sleep(0.05)
                    status = client.get(f"/jobs/{job_id}").json()
                assert status == {
                    "state": "succeeded",
                    "attempts": 1,
                    "result": "welcome mail sent to Ada <ada@example.com>",
                }
                assert client.get("/jobs/no-such-job").status_code == 404
            finally:
                worker.stop()
                running.result(timeout=20)
    finally:
        asyncio.run(binding.unbind())
    assert web_app.app.prefix == "web-example"  # the module's app got its own settings back


def node_publisher_ready() -> str:
    """The node binary, with the example's packages installed (npm ci if they are missing).

    Node is required, not optional: CI installs it and runs ``npm ci --prefix examples/node``
    before the tests, and a missing node must fail the run rather than skip the example.
    """
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "node is not installed: the Node.js publisher example needs Node.js 18+ "
            "(then `npm ci --prefix examples/node`)"
        )
    packages = NODE_DIR / "node_modules" / "@nats-io"
    if not all((packages / name).is_dir() for name in ("transport-node", "jetstream", "kv")):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not installed: run `npm ci --prefix examples/node`")
        installed = subprocess.run(
            [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
    return node


async def run_node_publisher(app: Aarq, url: str, *args: str) -> list[dict[str, Any]]:
    """Run examples/node/publish.mjs with `args` against `app`; its JSON output lines."""
    proc = await asyncio.create_subprocess_exec(
        node_publisher_ready(),
        "examples/node/publish.mjs",
        *args,
        cwd=ROOT,
        env=cli_env(NATS_URL=url, AIOQ_PREFIX=app.prefix, AIOQ_QUEUE="email"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(45):
        stdout, stderr = await proc.communicate()
    assert proc.returncode == 0, stderr.decode()
    return [json.loads(line) for line in stdout.decode().splitlines()]


async def test_node_publisher_job_runs_on_a_python_worker(
    aioq_app_factory: AppFactory, aioq_worker: WorkerFactory, aioq_url: str
) -> None:
    from examples import tasks

    app = await aioq_app_factory(tasks.app)
    await aioq_worker(["email"])
    (published,) = await run_node_publisher(
        app, aioq_url, "send_email", '["grace@example.com", "hi from Node"]'
    )
    assert published["stream"] == app.names.jobs_stream
    assert published["duplicate"] is False

    job = await app.job(published["id"], "email")
    assert await job.result(timeout=15) is None
    assert ("grace@example.com", "hi from Node") in app.state.outbox
    record = await job.status()
    assert (record.state, record.task, record.attempts) == ("succeeded", "send_email", 1)


async def test_node_publisher_follows_events_and_reads_the_result(
    aioq_app_factory: AppFactory, aioq_worker: WorkerFactory, aioq_url: str
) -> None:
    from examples import tasks

    app = await aioq_app_factory(tasks.app)
    await aioq_worker(["email"])
    lines = await run_node_publisher(
        app, aioq_url, "--wait", "send_email", '["ada@example.com", "followed from Node"]'
    )
    # The job may start before the publish acknowledgement reaches Node: find each kind.
    (published,) = [line for line in lines if "stream" in line]
    events = [line["event"] for line in lines if "event" in line]
    assert [event["kind"] for event in events] == ["started", "succeeded"], lines
    assert {event["id"] for event in events} == {published["id"]}
    record = lines[-1]["record"]
    assert (record["id"], record["state"], record["task"]) == (
        published["id"],
        "succeeded",
        "send_email",
    )
    assert ("ada@example.com", "followed from Node") in app.state.outbox
