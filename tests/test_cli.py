"""The ``aioq`` command line, run as a real process (``python -m aioq``)."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

import aioq
from aioq import Aarq

from .apps.proc_app import build
from .procs import APP_PATH, ROOT, Procs, cli_env, delete_prefix, run_cli

pytestmark = pytest.mark.timeout(30)

UNREACHABLE = "nats://127.0.0.1:1"


def flat(text: str) -> str:
    """`text` without the boxes of rich's error panels, on one line."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture
async def client(nats_url: str, prefix: str) -> AsyncIterator[Aarq]:
    application = build(prefix, servers=nats_url)
    yield application
    await application.close()
    await delete_prefix(nats_url, application.names)


@pytest.fixture
def procs(client: Aarq, tmp_path: Path, prefix: str) -> Iterator[Procs]:
    running = Procs(tmp_path, cli_env(AIOQ_TEST_PREFIX=prefix))
    try:
        yield running
    finally:
        running.reap_all()


# -- parsing and start-up errors --------------------------------------------------------------


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"aioq {aioq.__version__}\n"


def test_worker_without_arguments_shows_usage() -> None:
    result = run_cli("worker")
    output = result.stdout + result.stderr
    assert result.returncode in (0, 2)
    assert "Usage:" in output
    assert "APP_PATH" in output
    assert "--concurrency" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-c", "0"], "'--concurrency' / '-c'"),
        (["-c", "x"], "'--concurrency' / '-c'"),
        (["--log-level", "loud"], "'--log-level'"),
        (["--bogus"], "--bogus"),
        (["--shutdown-grace", "-1"], "'--shutdown-grace'"),
    ],
    ids=["c-zero", "c-not-int", "log-level", "unknown-option", "negative-grace"],
)
def test_bad_flag_is_a_usage_error(args: list[str], expected: str) -> None:
    result = run_cli("worker", APP_PATH, "-s", UNREACHABLE, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in flat(result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("app_path", "extra", "message"),
    [
        ("tests.apps.no_such_module:app", [], "cannot import 'tests.apps.no_such_module'"),
        ("tests.apps.proc_app:nope", [], "module 'tests.apps.proc_app' has no attribute 'nope'"),
        ("tests.apps.proc_app:not_an_app", [], "is a dict, not an aioq app"),
        ("tests.apps.proc_app", [], "APP_PATH must look like module:attribute"),
        ("tests.apps.broken_app:app", [], "RuntimeError: this module is broken on purpose"),
        (APP_PATH, ["-q", "bad.queue"], "invalid queue name 'bad.queue'"),
    ],
    ids=["no-module", "no-attribute", "not-an-app", "no-colon", "import-fails", "bad-queue"],
)
def test_bad_app_path_is_one_error_line(app_path: str, extra: list[str], message: str) -> None:
    result = run_cli("worker", app_path, "-s", UNREACHABLE, *extra)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_is_one_error_line() -> None:
    started = time.monotonic()
    result = run_cli("worker", APP_PATH, "-s", UNREACHABLE, timeout=20)
    assert time.monotonic() - started < 10
    assert result.returncode == 1, result.stderr
    # One line and nothing else: no traceback, no log line per failed connect attempt.
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: cannot reach NATS at {UNREACHABLE}")


# -- a running worker ----------------------------------------------------------------------------


async def test_queues_concurrency_and_debug_level(
    client: Aarq, procs: Procs, nats_url: str
) -> None:
    worker = procs.start(
        "worker",
        APP_PATH,
        "-q",
        "default",
        "-q",
        "other",
        "-c",
        "3",
        "--log-level",
        "debug",
        "-s",
        nats_url,
    )
    await worker.wait_log("started: queues=default,other concurrency=3")
    job = await client.get_task("echo_other").enqueue("payload-marker-1")
    await worker.wait_log(f"job {job.id} task=echo_other queue=other attempt=1 took=")
    debug = [line for line in worker.log().splitlines() if " DEBUG " in line]
    assert any("payload-marker-1" in line for line in debug), worker.log()
    worker.send(signal.SIGTERM)
    assert await worker.wait_exit() == 0
    assert "Traceback" not in worker.log()


async def test_info_level_and_nats_url_from_the_environment(
    client: Aarq, procs: Procs, nats_url: str
) -> None:
    worker = procs.start("worker", APP_PATH, env={"NATS_URL": nats_url})  # no -s
    await worker.wait_log("started: queues=default concurrency=10")
    job = await client.get_task("echo").enqueue("payload-marker-2")
    await worker.wait_log(f"job {job.id} ")
    outcome = [line for line in worker.log().splitlines() if f"job {job.id} " in line]
    assert len(outcome) == 1, worker.log()
    assert re.search(
        rf" INFO +aioq\.worker: job {job.id} task=echo queue=default attempt=1 "
        r"took=\d+\.\d+s succeeded$",
        outcome[0],
    ), outcome
    worker.send(signal.SIGINT)
    assert await worker.wait_exit() == 0
    log = worker.log()
    assert " DEBUG " not in log
    assert "payload-marker-2" not in log
    assert "Traceback" not in log


# -- aioq server and the README demo ------------------------------------------------------------


@pytest.fixture
def monitoring_port_taken() -> Iterator[None]:
    """Hold the config's monitoring port (8222), as a developer's own `aioq server` would."""
    with socket.socket() as blocker:
        with contextlib.suppress(OSError):  # already taken: just as good
            blocker.bind(("127.0.0.1", 8222))
            blocker.listen()
        yield


@pytest.mark.usefixtures("monitoring_port_taken")
async def test_server_command(procs: Procs, tmp_path: Path) -> None:
    store = tmp_path / "store"
    server = procs.start("server", "--port", "0", "--store-dir", str(store))
    await server.wait_log("nats-server running at ")
    match = re.search(r"running at (nats://\S+)", server.log())
    assert match, server.log()
    nc = await nats.connect(match[1], connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        await js.add_stream(name="PROBE", subjects=["probe.>"])
        ack = await js.publish("probe.x", b"hi")
        assert ack.seq == 1
    finally:
        await nc.close()
    assert (store / "jetstream").is_dir()
    server.send(signal.SIGTERM)
    assert await server.wait_exit(timeout=15) == 0
    assert "error" not in server.log().lower()


def test_readme_demo() -> None:
    result = subprocess.run(
        [sys.executable, "examples/demo.py"],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo: 10 of 10 jobs processed" in result.stdout
    assert "worker exited with 0" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
