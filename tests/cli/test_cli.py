"""The ``aioq`` command line, run as a real process (``python -m aioq``)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

import aioq
from aioq import Aarq

from ..procs import APP_PATH, ROOT, Procs, cli_env, run_cli

pytestmark = pytest.mark.timeout(30)

UNREACHABLE = "nats://127.0.0.1:1"


def flat(text: str) -> str:
    """`text` without the boxes of rich's error panels, on one line."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


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
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["queues", "--bogus"], "No such option: --bogus"),
        (["dead", "list", "default", "--limit", "0"], "'--limit'"),
        (["events", "-n", "x"], "'--count' / '-n'"),
        (["server", "--port", "abc"], "'--port' / '-p'"),
        (["server", "--monitor-port", "70000"], "'--monitor-port' / '-m'"),
        (["job", "status"], "Missing argument 'ID'"),
        (["enqueue", APP_PATH, "echo", "--delay", "soon"], "'--delay'"),
        (["queue", "delete"], "Missing argument 'QUEUE'"),
        (["dead", "list", "default", "--reason", "bored"], "'--reason'"),
        (["dead", "retry", "default", "--since", "yesterday"], "'yesterday' is not a time"),
        (["dead", "list", "default", "--since", "20", "--until", "10"], "later than --since"),
        (["replay", "default"], "Missing option '--since'"),
        (["replay", "default", "--since", "20", "--until", "20"], "later than --since"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, list) else None,
)
def test_usage_errors_of_every_command_are_one_line(args: list[str], expected: str) -> None:
    result = run_cli(*args, "-s", UNREACHABLE) if args[0] != "server" else run_cli(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        (
            ["worker"],
            ["[default: default]", "[default: 10]", "[default: 30.0]", "[default: no limit]"],
        ),
        (["server"], ["[default: 4222]", "[default: .nats-data]", "[default: the config's (8222)"]),
        (["enqueue"], ["[default: []]", "[default: {}]", "[default: no delay]"]),
        (["events"], ["[default: all]", "[default: no limit]"]),
        (["dead", "list"], ["[default: all]"]),
        (["queue", "pause"], ["[default: until `aioq queue resume`]"]),
        (["scheduler"], ["[default: all of the app's]", "[default: 1.0]"]),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, list) and " " not in value[0] else None,
)
def test_help_shows_the_defaults(command: list[str], defaults: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    text = flat(result.stdout)
    for default in defaults:
        assert default in text, (default, text)


def test_an_app_path_to_an_int_says_an_int() -> None:
    result = run_cli("worker", "tests.apps.proc_app:TASK_RETRIES", "-s", UNREACHABLE)
    assert result.returncode == 1, result.stderr
    assert "tests.apps.proc_app:TASK_RETRIES is an int, not an aioq app" in result.stderr


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
    # It states its fsync choice (the config's sync_interval) and what it means.
    await server.wait_log("fsync: every 120s (sync_interval): a power loss")
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


# -- a mistyped queue ---------------------------------------------------------------------------


async def test_mistyped_queue_warns_and_its_consumer_can_be_deleted(
    client: Aarq, procs: Procs, nats_url: str, prefix: str
) -> None:
    conn = ["-s", nats_url, "--prefix", prefix]
    worker = procs.start("worker", APP_PATH, "-q", "ordrs", "--heartbeat-interval", "0.5", *conn)
    await worker.wait_log("started: queues=ordrs")
    await worker.wait_log("queue ordrs: no task of the app uses it")
    assert "the app's tasks use: default, other" in worker.log()

    # Refused while the worker pulls from it; the message names the worker.
    refused = await asyncio.to_thread(run_cli, "queue", "delete", "ordrs", *conn)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "queue 'ordrs' is pulled by 1 live worker(s)" in refused.stderr
    assert f"pid {worker.pid}" in refused.stderr
    assert "ordrs" in [q.name for q in await client.queues()]

    worker.send(signal.SIGTERM)
    assert await worker.wait_exit() == 0
    deleted = await asyncio.to_thread(run_cli, "queue", "delete", "ordrs", *conn)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == "queue ordrs: consumer deleted\n"
    assert "ordrs" not in [q.name for q in await client.queues()]

    again = await asyncio.to_thread(run_cli, "queue", "delete", "ordrs", *conn)
    assert again.returncode == 1
    assert again.stderr.startswith("error: unknown queue 'ordrs'"), again.stderr


# -- two local servers --------------------------------------------------------------------------


def status_of(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as answer:
        status: int = answer.status
        return status


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_second_local_server_starts_beside_the_first(procs: Procs, tmp_path: Path) -> None:
    """Both take the config's monitoring port (8222) unless it is taken: the second finds it
    taken, by the first or by anything else on the machine, and monitors on a free one."""
    servers = [
        procs.start("server", "--port", str(free_port()), "--store-dir", str(tmp_path / name))
        for name in ("one", "two")
    ]
    monitors = []
    for server in servers:
        await server.wait_log("nats-server running at ")
        match = re.search(r"running at (nats://\S+) \(monitoring (http://\S+),", server.log())
        assert match, server.log()
        nc = await nats.connect(match[1], connect_timeout=5, max_reconnect_attempts=0)
        await nc.close()
        monitors.append(match[2])
    assert monitors[0] != monitors[1]
    for monitor in monitors:
        assert await asyncio.to_thread(status_of, f"{monitor}/healthz") == 200
    for server in servers:
        server.send(signal.SIGTERM)
        assert await server.wait_exit(timeout=15) == 0


async def test_two_servers_cannot_share_a_store(procs: Procs, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    first = procs.start("server", "--port", "0", "--store-dir", store)
    await first.wait_log("nats-server running at ")
    second = await asyncio.to_thread(run_cli, "server", "--port", "0", "--store-dir", store)
    assert second.returncode == 1
    assert second.stderr == (
        f"error: {store} is the store of another running `aioq server`: give this one its own "
        "with --store-dir\n"
    )
    first.send(signal.SIGTERM)
    assert await first.wait_exit(timeout=15) == 0
