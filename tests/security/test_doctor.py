"""`aioq doctor` on a healthy and on an unhealthy set-up, against real servers."""

from __future__ import annotations

import asyncio
import json

import nats
from nats.js.api import (
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from aioq.doctor import ConsumerFacts, Facts, Level, StreamFacts, audit
from aioq.testing.harness import start_worker

from ..procs import cli_env, run_cli
from .conftest import ServerFactory
from .doctor_app import app as doctor_app

APP = "tests.security.doctor_app:app"


async def test_a_healthy_set_up_passes(configured_server: ServerFactory) -> None:
    server = configured_server("http: 127.0.0.1:-1\njetstream { sync_interval: always }")
    doctor_app.use_servers(server.url)
    worker = await start_worker(doctor_app, ["mail"])
    await worker.stop()
    await doctor_app.close()
    env = cli_env(NATS_URL=server.url)
    done = await asyncio.to_thread(
        run_cli, "doctor", "--app", APP, "--monitor", str(server.monitor_url), env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "sync_interval: always" in out
    assert "each queue holds at most 100 jobs" in out
    assert "queue 'mail': ack_wait 20s" in out
    assert "queue 'reports': no worker has pulled it yet" in out
    assert "0 error(s)" in out


def test_an_unhealthy_set_up_fails_with_fixes(configured_server: ServerFactory) -> None:
    server = configured_server("")
    asyncio.run(_break_it(server.url))
    done = run_cli("doctor", "-s", server.url, "--prefix", "bad", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    findings = json.loads(done.stdout)
    errors = [f["what"] for f in findings if f["level"] == "error"]
    assert any("kept in memory" in e for e in errors)
    assert any("discard: old" in e for e in errors)
    assert any("drops jobs older than 60s" in e for e in errors)
    assert any("deleted after 30s without workers" in e for e in errors)
    assert all(f["fix"] for f in findings if f["level"] != "ok")
    warnings = [f["what"] for f in findings if f["level"] == "warning"]
    assert any("cannot tell how often the server fsyncs" in w for w in warnings)
    # Text output: each finding, then its fix.
    text = run_cli("doctor", "-s", server.url, "--prefix", "bad")
    assert text.returncode == 1
    assert "error    stream BAD_JOBS (jobs) is kept in memory" in text.stdout
    assert "         fix: " in text.stdout


async def _break_it(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name="BAD_JOBS",
            subjects=["bad.jobs.>", "bad.sched.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.MEMORY,
            discard=DiscardPolicy.OLD,
            max_msgs=1000,
            max_age=60,
        )
    )
    await js.add_consumer(
        "BAD_JOBS",
        ConsumerConfig(durable_name="mail", filter_subject="bad.jobs.mail", inactive_threshold=30),
    )
    await nc.close()


def test_jetstream_off_is_an_error() -> None:
    facts = Facts(
        version=(2, 12, 3),
        jetstream=False,
        max_payload=1 << 20,
        sync=None,
        clustered=False,
        account_storage_limit=-1,
        account_storage_used=0,
        jobs_stream_expected="AIOQ_JOBS",
    )
    [finding] = audit(facts)
    assert finding.level is Level.ERROR
    assert "-js" in finding.fix


def test_rules_on_facts() -> None:
    stream = StreamFacts(
        name="AIOQ_JOBS",
        role="jobs",
        storage="file",
        replicas=1,
        retention="workqueue",
        discard="new",
        max_age=0,
        max_msgs=-1,
        max_bytes=-1,
        max_msgs_per_subject=-1,
        duplicate_window=120,
        messages=0,
        bytes=0,
    )
    consumer = ConsumerFacts("mail", "explicit", 2.0, -1, None, 0, app_ack_wait=None)
    facts = Facts(
        version=(2, 10, 1),
        jetstream=True,
        max_payload=64 << 20,
        sync=120.0,
        clustered=True,
        account_storage_limit=100,
        account_storage_used=90,
        jobs_stream_expected="AIOQ_JOBS",
        streams=[stream],
        consumers=[consumer],
        dead_letters={"mail": 2},
    )
    found = {f.what.split(":")[0]: f.level for f in audit(facts)}
    text = " | ".join(f.what for f in audit(facts))
    assert "can lose whole streams" in text
    assert "fsynced every 120s" in text
    assert "1 replica(s)" in text
    assert "queues have no cap" in text
    assert "ack_wait is 2s" in text
    assert "2 dead letter(s)" in text
    assert "uses 90 of its 100 bytes" in text
    assert "max_payload is 67108864" in text
    assert Level.ERROR in found.values()
