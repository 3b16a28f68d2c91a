"""The job, queue, worker, dead-letter and event commands of the ``aioq`` command line.

Most commands run in-process with typer's `CliRunner` (in a thread, since each command runs
its own event loop) against the session server, next to an in-process worker; `aioq events`
and `aioq worker --prefix` run as real processes.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from aioq import Aarq
from aioq.cli import cli
from aioq.cli.jobs import NOT_DONE_EXIT
from aioq.options import CallOptions, UniqueSpec
from aioq.task import Task

from ..apps import cli_app
from ..conftest import WorkerFactory
from ..helpers import eventually
from ..procs import Procs, cli_env

pytestmark = pytest.mark.timeout(60)

APP = "tests.apps.cli_app:app"
UNREACHABLE = "nats://127.0.0.1:1"
# No connection settings from the developer's shell; wide rich error panels.
ENV: dict[str, str | None] = {
    "NATS_URL": None,
    "NATS_CREDS": None,
    "NATS_TOKEN": None,
    "NATS_USER": None,
    "NATS_PASSWORD": None,
    "COLUMNS": "200",
    "NO_COLOR": "1",
}


def flat(text: str) -> str:
    """`text` without the boxes of rich's error panels, on one line."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, env=ENV)


class Cli:
    """Runs ``aioq ...`` in-process against the test's server and prefix."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.conn = ["-s", url, "--prefix", prefix]

    async def __call__(self, *args: str, input: str | None = None) -> Result:
        result = await asyncio.to_thread(invoke, *args, *self.conn, input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    async def ok(self, *args: str, input: str | None = None) -> Result:
        result = await self(*args, input=input)
        assert result.exit_code == 0, result.output
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self.ok(*args, "--json")).stdout)

    async def json_exit(self, code: int, *args: str) -> Any:
        """The JSON output of a command that must exit with `code`."""
        result = await self(*args, "--json")
        assert result.exit_code == code, result.output
        return json.loads(result.stdout)

    async def fails(self, code: int, *args: str, input: str | None = None) -> str:
        """Run a command that must exit with `code`; return its stderr."""
        result = await self(*args, input=input)
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.stderr


@pytest.fixture
def aioq(nats_url: str, prefix: str) -> Cli:
    return Cli(nats_url, prefix)


@pytest.fixture
def tasks(app: Aarq) -> Aarq:
    """The session app with the tasks of ``tests/apps/cli_app.py``, for in-process workers."""
    return cli_app.register(app)


@pytest.fixture
def fixed() -> Iterator[dict[str, bool]]:
    yield cli_app.FIXED
    cli_app.FIXED["yes"] = False


# -- enqueue and job ---------------------------------------------------------------------------


async def test_job_status_shows_a_waiting_job_and_its_dependencies(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory
) -> None:
    add = tasks.get_task("add")
    first = await add.enqueue(1, 2)
    waiting = await add.with_options(depends_on=[first]).enqueue(3, 4)
    status = (await aioq.ok("job", "status", waiting.id)).stdout
    assert re.search(r"^state: +waiting$", status, re.M), status
    assert re.search(rf"^depends on: +{first.id}$", status, re.M), status
    await start_worker(queues=["default"])
    assert await waiting.result(timeout=10) == 7


async def test_enqueue_with_dependencies_uniqueness_and_a_group(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory
) -> None:
    first = await aioq.json("enqueue", APP, "add", "[1, 2]")
    second = await aioq.json("enqueue", APP, "add", "[3, 4]")
    args = ["--depends-on", first["id"], "--depends-on", second["id"]]
    after = await aioq.json("enqueue", APP, "add", "[5, 6]", *args)
    record = await aioq.json("job", "status", after["id"])
    assert (record["state"], record["depends_on"]) == ("waiting", [first["id"], second["id"]])
    assert (await aioq.json("queue", "info", "default"))["waiting"] == 1
    listed = {q["name"]: q for q in await aioq.json("queues")}
    assert (listed["default"]["waiting"], listed["default"]["pending"]) == (1, 2)
    table = (await aioq.ok("queue", "info", "default")).stdout
    assert re.search(r"^waiting: +1$", table, re.M), table
    # A unique key held by a queued job: the second enqueue names that job.
    unique = await aioq.json("enqueue", APP, "add", "[7, 8]", "--unique-key", "k1")
    again = await aioq.json("enqueue", APP, "add", "[9, 9]", "--unique-key", "k1")
    assert (again["id"], again["duplicate"]) == (unique["id"], True)
    out = (await aioq.ok("enqueue", APP, "add", "[9, 9]", "--unique-key", "k1")).stdout
    assert out.startswith(f"job holding the key is {unique['id']}")
    same = [await aioq.json("enqueue", APP, "add", "[2, 2]", "--unique") for _ in range(2)]
    assert same[1] == {**same[0], "duplicate": True}
    grouped = await aioq.json("enqueue", APP, "add", "[0, 1]", "--group", "tenant-7")
    stored = await (await tasks.connect()).jobs.get("default", grouped["id"])
    assert stored is not None
    assert json.loads(stored.data)["group"] == "tenant-7"
    stderr = await aioq.fails(1, "enqueue", APP, "add", "[0, 1]", "--group", "bad group")
    assert "invalid group 'bad group'" in stderr
    await start_worker(queues=["default"])
    assert await (await tasks.job(after["id"])).result(timeout=10) == 11

    async def none_waiting() -> bool:  # the waiting entry goes once the job is queued
        return (await aioq.json("queue", "info", "default"))["waiting"] == 0

    await eventually(none_waiting, what="no job waiting")
    await (await tasks.job(grouped["id"], "default")).result(timeout=10)
    status = (await aioq.ok("job", "status", grouped["id"])).stdout
    assert re.search(r"^group: +tenant-7$", status, re.M), status
    await (await tasks.job(unique["id"], "default")).result(timeout=10)
    status = (await aioq.ok("job", "status", unique["id"])).stdout
    held = UniqueSpec.of("add", CallOptions(unique_key="k1"), b"").key
    assert re.search(rf"^unique key: +{held}$", status, re.M), status
    assert (await aioq.json("job", "status", unique["id"]))["unique_key"] == held


async def test_enqueue_then_follow_the_job(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory
) -> None:
    # Without a worker the job waits: no outcome yet (exit 3), status queued.
    job = await aioq.json("enqueue", APP, "add", "[2, 3]")
    assert job == {"id": job["id"], "task": "add", "queue": "default", "duplicate": False}
    assert (await aioq.json("job", "status", job["id"]))["state"] == "queued"
    stderr = await aioq.fails(NOT_DONE_EXIT, "job", "result", job["id"])
    assert "no outcome yet (state: queued)" in stderr

    await start_worker(queues=["default", "slow"])
    assert (await aioq.ok("job", "result", job["id"], "--wait", "--timeout", "10")).stdout == "5\n"
    status = (await aioq.ok("job", "status", job["id"])).stdout
    assert re.search(r"^state: +succeeded$", status, re.M), status
    assert re.search(r"^result: +5$", status, re.M), status

    # --wait prints the id line, then the result as JSON.
    result = await aioq.ok("enqueue", APP, "add", "--kwargs", '{"a": 1, "b": 41}', "--wait")
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"enqueued job \w+ \(task add, queue default\)", lines[0]), lines
    assert lines[1:] == ["42"]
    waited = await aioq.json("enqueue", APP, "add", "[1, 1]", "--wait")
    assert (waited["state"], waited["result"]) == ("succeeded", 2)


async def test_enqueue_wait_reports_a_failure(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory
) -> None:
    await start_worker()
    stderr = await aioq.fails(1, "enqueue", APP, "fragile", '["x"]', "--wait")
    assert "failed: ValueError: not fixed yet: x" in stderr
    assert "aioq job status" in stderr  # points to the traceback
    result = await aioq("enqueue", APP, "fragile", '["y"]', "--wait", "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["state"] == "failed"
    assert out["error"]["type"] == "ValueError"
    assert "Traceback (most recent call last)" in out["error"]["traceback"]
    status = (await aioq.ok("job", "status", out["id"])).stdout
    assert "error:     ValueError: not fixed yet: y" in status
    assert "traceback:\n  Traceback (most recent call last)" in status
    assert (await aioq.fails(1, "job", "result", out["id"])).startswith(
        f"error: job {out['id']} failed: ValueError: not fixed yet: y"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "[1, 2"], "Invalid value for ARGS_JSON: not valid JSON"),
        (["add", '{"a": 1}'], "ARGS_JSON: must be a JSON array"),
        (["add", "--kwargs", "[1]"], "--kwargs: must be a JSON object"),
        (["add", "--delay", "-1"], "'--delay'"),
        (["add", "[1, 2]", "--timeout", "1"], "Invalid value for --timeout: only with --wait"),
        (
            ["add", "[1, 2]", "--priority", "10"],
            "'--priority': 10 is not in the range 0<=x<=9",
        ),
    ],
    ids=[
        "bad-json",
        "not-an-array",
        "kwargs-not-object",
        "negative-delay",
        "timeout-no-wait",
        "priority-out-of-range",
    ],
)
def test_enqueue_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = invoke("enqueue", APP, *args, "-s", UNREACHABLE)
    assert result.exit_code == 2, result.output
    assert message in flat(result.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "[]"], "error: unknown task 'nope' (registered: add, flaky, fragile, hold)"),
        (["add", "[1]"], "error: cannot enqueue add(a: int, b: int): missing a required argument"),
        (["add", "[1, 2]", "--prefix", "bad prefix"], "error: invalid prefix 'bad prefix'"),
    ],
    ids=["unknown-task", "bad-arguments", "bad-prefix"],
)
def test_enqueue_errors_exit_1_before_connecting(args: list[str], message: str) -> None:
    result = invoke("enqueue", APP, *args, "-s", UNREACHABLE)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1


def test_enqueue_delay_needs_delayed_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    def without_delay(self: Task[Any, Any], *, job_id: str | None = None) -> None:
        raise AssertionError("not called")

    monkeypatch.setattr(Task, "with_options", without_delay)
    result = invoke("enqueue", APP, "add", "[1, 2]", "--delay", "5", "-s", UNREACHABLE)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: --delay needs delayed jobs")


@pytest.mark.skipif(
    "delay" not in __import__("inspect").signature(Task.with_options).parameters,
    reason="delayed jobs are not in this version",
)
async def test_enqueue_delay_defers_the_job(aioq: Cli, tasks: Aarq) -> None:
    job = await aioq.json("enqueue", APP, "add", "[1, 2]", "--delay", "3600")
    assert (await aioq.json("job", "status", job["id"]))["state"] == "deferred"
    assert (await aioq.json("queues", "default"))[0]["delayed"] == 1
    assert (await aioq.ok("job", "abort", job["id"])).stdout == f"aborted job {job['id']}\n"


async def test_enqueue_priority_shows_per_level_in_queues(aioq: Cli, tasks: Aarq) -> None:
    await aioq.json("enqueue", APP, "add", "[1, 2]", "--priority", "9")
    await aioq.json("enqueue", APP, "add", "[1, 2]")
    listed = (await aioq.json("queues", "default"))[0]
    assert listed["pending"] == 2
    assert listed["levels"] == {"9": 1}
    table = (await aioq.ok("queues", "default")).stdout
    assert "BY LEVEL" in table.splitlines()[0]
    assert "p9=1 p5=1" in table


async def test_unknown_job_id_exits_1(aioq: Cli, tasks: Aarq) -> None:
    for command in (["status"], ["result"], ["result", "--wait"], ["abort"]):
        stderr = await aioq.fails(1, "job", *command, "no-such-job")
        assert stderr == "error: no job 'no-such-job' is queued, held or on record\n"


async def test_result_timeout_abort_and_abort_again(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory
) -> None:
    await start_worker(queues=["slow"])
    job = await aioq.json("enqueue", APP, "hold", "[30]")
    stderr = await aioq.fails(
        NOT_DONE_EXIT, "job", "result", job["id"], "--wait", "--timeout", "0.3"
    )
    assert f"job {job['id']} had no outcome within 0.3s" in stderr
    for _ in range(100):  # the running record comes a moment after the job starts
        status = await aioq.json("job", "status", job["id"])
        if "progress" in status:
            break
        await asyncio.sleep(0.05)
    assert (status["state"], status["progress"], status["progress_message"]) == (
        "running",
        0.5,
        "halfway",
    )
    assert "progress:  50% (halfway)" in (await aioq.ok("job", "status", job["id"])).stdout

    assert (await aioq.ok("job", "abort", job["id"])).stdout == f"aborted job {job['id']}\n"
    stderr = await aioq.fails(1, "job", "abort", job["id"])
    assert stderr == f"error: job {job['id']} already ended (aborted); nothing to abort\n"
    stderr = await aioq.fails(1, "job", "result", job["id"])
    assert stderr == f"error: job {job['id']} was aborted\n"


# -- queues and workers ------------------------------------------------------------------------


async def test_queues_command(aioq: Cli, tasks: Aarq, start_worker: WorkerFactory) -> None:
    # An app's task queues are known before anything happened on them.
    assert (await aioq.ok("queues")).stdout == f"no queues under prefix '{aioq.prefix}'\n"
    listed = await aioq.json("queues", "--app", APP)
    assert [(q["name"], q["pending"], q["consumer"]) for q in listed] == [
        ("default", 0, False),
        ("slow", 0, False),
    ]
    for _ in range(2):
        await aioq.ok("enqueue", APP, "add", "[1, 2]")
    listed = {q["name"]: q for q in await aioq.json("queues")}
    assert listed["default"]["pending"] == 2
    assert listed["default"]["consumer"] is False

    await start_worker(queues=["default"])
    await aioq.fails(1, "enqueue", APP, "fragile", '["z"]', "--wait")
    listed = {q["name"]: q for q in await aioq.json("queues")}
    assert (listed["default"]["pending"], listed["default"]["dead"]) == (0, 1)
    assert listed["default"]["consumer"] is True

    table = (await aioq.ok("queues")).stdout.splitlines()
    assert table[0].split() == [
        "QUEUE", "PENDING", "IN", "FLIGHT", "REDELIVERED", "DELAYED", "WAITING", "DEAD", "PULLS",
        "STATE"
    ]  # fmt: skip
    row = next(line for line in table if line.startswith("default "))
    assert row.split()[1:7] == ["0", "0", "0", "0", "0", "1"], table
    assert row.endswith("active")

    only = await aioq.json("queues", "default")
    assert [q["name"] for q in only] == ["default"]
    stderr = await aioq.fails(1, "queues", "nope")
    assert stderr.startswith("error: unknown queue 'nope' under prefix ")
    assert "(queues: default)" in stderr


async def test_groups_command_shows_the_places_held(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory
) -> None:
    assert (await aioq.ok("groups")).stdout.startswith("no group holds places or starts")
    tasks.group_limit("gold", max_running=2, rate_limit=50, rate_interval=60)
    hold = tasks.get_task("hold").with_options(group="gold")
    jobs = [await hold.enqueue(0.5) for _ in range(3)]  # the third waits for a place
    await start_worker(queues=["slow"])

    async def holding() -> Any:
        found = await aioq.json("groups", "--app", APP)
        return found if found and found[0]["running"] == 2 else None

    [gold] = await eventually(holding)
    assert (gold["group"], gold["limit"]["max_running"], gold["rate_limit"]) == ("gold", 2, 50)
    table = (await aioq.ok("groups", "--app", APP)).stdout.splitlines()
    assert table[0].split() == ["GROUP", "RUNNING", "STARTED", "LIMIT"], table
    assert table[1].split()[:2] == ["gold", "2"], table
    assert table[1].endswith("max 2 running, 50/60s"), table
    assert "LIMIT" not in (await aioq.ok("groups")).stdout
    for job in jobs:
        assert await job.result(timeout=10) == "held"


async def test_queues_and_workers_when_there_are_none(nats_url: str, prefix: str) -> None:
    aioq = Cli(nats_url, prefix)
    assert (await aioq.ok("queues")).stdout == f"no queues under prefix '{prefix}'\n"
    assert await aioq.json("queues") == []
    assert (await aioq.ok("workers")).stdout == f"no live workers under prefix '{prefix}'\n"
    assert await aioq.json("workers") == []
    await asyncio.to_thread(_delete_streams, nats_url, prefix)


def _delete_streams(url: str, prefix: str) -> None:
    from ..procs import delete_prefix

    asyncio.run(delete_prefix(url, Aarq(prefix=prefix).names))


async def test_workers_command(aioq: Cli, tasks: Aarq, start_worker: WorkerFactory) -> None:
    worker = await start_worker(queues=["default", "slow"], concurrency=4)
    listed = await aioq.json("workers")
    assert [w["id"] for w in listed] == [worker.id]
    record = listed[0]
    assert (record["queues"], record["concurrency"], record["active"]) == (
        ["default", "slow"],
        4,
        0,
    )
    assert 0 <= record["age"] < 5
    table = (await aioq.ok("workers")).stdout.splitlines()
    assert table[0].split()[:4] == ["WORKER", "HOST", "PID", "QUEUES"]
    assert table[1].startswith(worker.id)
    assert " default,slow " in table[1]
    assert " 0/4 " in table[1]
    assert table[1].endswith(" ago")


# -- dead letters ------------------------------------------------------------------------------


async def test_dead_letters_list_show_retry_purge(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory, fixed: dict[str, bool]
) -> None:
    await start_worker()
    first = await aioq.json_exit(1, "enqueue", APP, "fragile", '["one"]', "--wait")
    second = await aioq.json_exit(1, "enqueue", APP, "fragile", '["two"]', "--wait")
    assert first["state"] == second["state"] == "failed"

    dead = await aioq.json("dead", "list", "default")
    assert [d["id"] for d in dead] == [first["id"], second["id"]]
    assert dead[0]["reason"] == "failed"
    assert dead[0]["error"]["type"] == "ValueError"
    assert [d["id"] for d in await aioq.json("dead", "list", "default", "--limit", "1")] == [
        first["id"]
    ]
    assert await aioq.json("dead", "list", "default", "--task", "add") == []
    assert await aioq.json("dead", "list", "default", "--error-type", "KeyError") == []
    table = (await aioq.ok("dead", "list", "default")).stdout.splitlines()
    assert table[0].split() == [
        "SEQ",
        "JOB",
        "TASK",
        "REASON",
        "ATTEMPTS",
        "DEAD",
        "SINCE",
        "ERROR",
    ]
    assert first["id"] in table[1]
    assert table[1].endswith("ValueError: not fixed yet: one")

    shown = (await aioq.ok("dead", "show", "default", first["id"])).stdout
    assert re.search(r"^reason: +failed$", shown, re.M), shown
    assert re.search(r"^error: +ValueError: not fixed yet: one$", shown, re.M), shown
    assert "traceback:\n  Traceback (most recent call last)" in shown
    assert 'payload:\n  {\n    "task": "fragile",' in shown
    letter = await aioq.json("dead", "show", "default", first["id"])
    assert (letter["id"], letter["task"], letter["attempts"]) == (first["id"], "fragile", 1)

    # The fix is deployed: retrying one by id runs it again, under the same id, and it succeeds.
    fixed["yes"] = True
    out = (await aioq.ok("dead", "retry", "default", first["id"])).stdout
    assert out == f"re-enqueued job {first['id']} (task fragile, queue default)\n"
    assert (await aioq.ok("job", "result", first["id"], "--wait", "--timeout", "10")).stdout == (
        '"ONE"\n'
    )
    assert [d["id"] for d in await aioq.json("dead", "list", "default")] == [second["id"]]

    # Filters select without --all; nothing matching is not an error.
    none = await aioq.ok("dead", "retry", "default", "--task", "add")
    assert none.stdout == "no dead letters on queue 'default' match; nothing re-enqueued\n"
    retried = await aioq.json("dead", "retry", "default", "--all", "--error-type", "ValueError")
    assert retried == [{"id": second["id"], "task": "fragile", "queue": "default"}]
    await aioq.ok("job", "result", second["id"], "--wait", "--timeout", "10")

    # Purge asks first; "no", or no terminal to ask on, keeps the letters.
    fixed["yes"] = False
    third = await aioq.json_exit(1, "enqueue", APP, "fragile", '["three"]', "--wait")
    stderr = await aioq.fails(1, "dead", "purge", "default", input="n\n")
    assert (await aioq.json("dead", "list", "default"))[0]["id"] == third["id"]
    await aioq.fails(1, "dead", "purge", "default", input="")
    purged = await aioq.ok("dead", "purge", "default", input="y\n")
    assert purged.stdout.endswith("purged 1 dead letters of queue 'default'\n")
    assert await aioq.json("dead", "list", "default") == []
    assert (await aioq.ok("dead", "purge", "default", "--yes")).stdout == (
        "no dead letters on queue 'default'; nothing to purge\n"
    )
    assert (await aioq.ok("dead", "list", "default")).stdout == (
        "no dead letters on queue 'default' match\n"
    )
    del stderr


async def test_replay_runs_again_the_jobs_that_succeeded_in_a_window(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory
) -> None:
    tasks.queue("default", history=600, max_running=4)
    await start_worker()
    first = await aioq.json("enqueue", APP, "add", "[2, 3]", "--wait")
    kept = await tasks.history.list("default")
    assert [k.job_id for k in kept] == [first["id"]]
    info = await aioq.json("queue", "info", "default")
    assert (info["max_running"], info["history"]) == (4, 600)
    listed = {q["name"]: q for q in await aioq.json("queues")}
    assert (listed["default"]["max_running"], listed["default"]["history"]) == (4, 600)
    text = (await aioq.ok("queue", "info", "default")).stdout
    assert re.search(r"^max_running: +4$", text, re.M), text
    assert re.search(r"^history: +10m00s$", text, re.M), text

    replayed = await aioq.json("replay", "default", "--since", repr(kept[0].at))
    assert [(j["task"], j["queue"]) for j in replayed] == [("add", "default")]
    assert replayed[0]["id"] != first["id"]
    assert (await aioq.ok("job", "result", replayed[0]["id"], "--wait")).stdout == "5\n"

    past = await aioq.ok("replay", "default", "--since", "2000-01-01", "--until", "2000-01-02")
    assert past.stdout == (
        "no kept job of queue 'default' succeeded in that window; nothing replayed\n"
    )
    assert await aioq.json("replay", "default", "--since", "2000-01-01", "--task", "fragile") == []
    await aioq.fails(1, "replay", "nowhere", "--since", "2000-01-01")


async def test_dead_retry_takes_a_window_of_time(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory, fixed: dict[str, bool]
) -> None:
    await start_worker()
    first = await aioq.json_exit(1, "enqueue", APP, "fragile", '["one"]', "--wait")
    second = await aioq.json_exit(1, "enqueue", APP, "fragile", '["two"]', "--wait")
    dead = {d["id"]: d["dead_at"] for d in await aioq.json("dead", "list", "default")}
    assert dead[first["id"]] < dead[second["id"]]

    # ISO times (UTC unless an offset is given) and unix seconds select the same way.
    long_ago = ["--since", "2000-01-01T00:00", "--until", "2000-01-02T00:00+02:00"]
    assert await aioq.json("dead", "list", "default", *long_ago) == []
    window = ["--since", "2000-01-01", "--until", repr(dead[second["id"]])]
    assert [d["id"] for d in await aioq.json("dead", "list", "default", *window)] == [first["id"]]

    fixed["yes"] = True
    since = ["--since", repr(dead[second["id"]]), "--task", "fragile", "--reason", "failed"]
    retried = await aioq.json("dead", "retry", "default", *since)
    assert retried == [{"id": second["id"], "task": "fragile", "queue": "default"}]
    await aioq.ok("job", "result", second["id"], "--wait", "--timeout", "10")
    assert [d["id"] for d in await aioq.json("dead", "list", "default")] == [first["id"]]


async def test_dead_letter_errors(aioq: Cli, tasks: Aarq, start_worker: WorkerFactory) -> None:
    await start_worker()
    job = await aioq.json_exit(1, "enqueue", APP, "fragile", '["x"]', "--wait")
    for args in (
        ["list", "nope"],
        ["show", "nope", job["id"]],
        ["retry", "nope", "--all"],
        ["retry", "nope", "some-id"],
        ["purge", "nope", "--yes"],
    ):
        stderr = await aioq.fails(1, "dead", *args)
        assert stderr.startswith("error: unknown queue 'nope' under prefix "), (args, stderr)
    stderr = await aioq.fails(1, "dead", "show", "default", "no-such-job")
    assert stderr == "error: no dead letter for job 'no-such-job' on queue 'default'\n"
    # A missing id among several: nothing is re-enqueued.
    stderr = await aioq.fails(1, "dead", "retry", "default", job["id"], "no-such-job")
    assert stderr == "error: no dead letter for job 'no-such-job' on queue 'default'\n"
    assert [d["id"] for d in await aioq.json("dead", "list", "default")] == [job["id"]]
    stderr = await aioq.fails(1, "dead", "list", "bad.queue")
    assert stderr.startswith("error: invalid queue name 'bad.queue'")

    result = await aioq("dead", "retry", "default")
    assert result.exit_code == 2
    assert "name the job ids to retry, or pass --all (or a filter)" in flat(result.stderr)
    result = await aioq("dead", "retry", "default", job["id"], "--all")
    assert result.exit_code == 2
    assert "name job ids, or use --all and filters; not both" in flat(result.stderr)


# -- connection options ------------------------------------------------------------------------


def test_missing_creds_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("queues", "--creds", str(tmp_path / "none.creds"), "-s", UNREACHABLE)
    assert result.exit_code == 2, result.output
    assert "'--creds'" in flat(result.stderr)


def test_unreachable_server_is_one_error_line() -> None:
    for args in (["workers"], ["job", "status", "x"]):
        result = invoke(*args, "-s", UNREACHABLE)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: cannot reach NATS at {UNREACHABLE}")
        assert result.stderr.count("\n") == 1


# -- real processes: aioq events, aioq worker --prefix -------------------------------------------


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    running = Procs(tmp_path, cli_env())
    try:
        yield running
    finally:
        running.reap_all()


async def test_events_follows_a_job_until_count_or_sigterm(
    aioq: Cli, tasks: Aarq, start_worker: WorkerFactory, procs: Procs, nats_url: str, prefix: str
) -> None:
    await start_worker()  # the queue exists (has a consumer) before `events default` starts
    conn = ["-s", nats_url, "--prefix", prefix]
    counted = procs.start("events", "default", "--json", "--count", "5", *conn)
    endless = procs.start("events", *conn)
    for proc in (counted, endless):
        await proc.wait_log("listening for events on ")

    # Enqueued on the worker's own connection: its "enqueued" event is ordered before the
    # worker's events (from another client it could arrive after "started").
    handle = await tasks.get_task("flaky").enqueue()
    assert await handle.result(timeout=10) == 2
    job = {"id": handle.id}
    assert await counted.wait_exit() == 0
    events = [json.loads(line) for line in counted.log().splitlines() if line.startswith("{")]
    assert [(e["kind"], e.get("attempt")) for e in events] == [
        ("enqueued", None),
        ("started", 1),
        ("retrying", 1),
        ("started", 2),
        ("succeeded", 2),
    ]
    assert {e["id"] for e in events} == {job["id"]}
    assert events[2]["error"]["message"] == "first attempt fails"

    await endless.wait_log(f"succeeded {job['id']} flaky attempt=2")
    endless.send(signal.SIGTERM)
    assert await endless.wait_exit() == 0
    assert "Traceback" not in endless.log()
    assert re.search(rf" default retrying  {job['id']} flaky attempt=1 ", endless.log())

    stderr = await aioq.fails(1, "events", "nope")
    assert "unknown queue 'nope'" in stderr
    assert "without QUEUE, aioq events follows" in stderr


async def test_worker_takes_the_connection_options(
    procs: Procs, nats_url: str, prefix: str
) -> None:
    # The module's app has prefix "aioqcli"; --prefix moves the worker to the test's.
    client = cli_app.register(Aarq(nats_url, prefix=prefix))
    try:
        worker = procs.start("worker", APP, "-s", nats_url, "--prefix", prefix, "-q", "default")
        await worker.wait_log("started: queues=default")
        job = await client.get_task("add").enqueue(20, 22)
        assert await job.result(timeout=10) == 42
        worker.send(signal.SIGTERM)
        assert await worker.wait_exit() == 0
    finally:
        await client.close()
        from ..procs import delete_prefix

        await delete_prefix(nats_url, client.names)


# -- documentation -------------------------------------------------------------------------------

DOCUMENTED = {
    "enqueue": ["enqueue"],
    "job": ["job", "status"],
    "job result": ["job", "result"],
    "job abort": ["job", "abort"],
    "queues": ["queues"],
    "workers": ["workers"],
    "groups": ["groups"],
    "dead list": ["dead", "list"],
    "dead show": ["dead", "show"],
    "dead retry": ["dead", "retry"],
    "dead purge": ["dead", "purge"],
    "events": ["events"],
    "replay": ["replay"],
}


@pytest.mark.parametrize("path", list(DOCUMENTED.values()), ids=list(DOCUMENTED))
def test_docs_cover_every_command_and_flag(path: list[str]) -> None:
    import typer.main

    page = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    command: Any = typer.main.get_command(cli)
    for name in path:
        command = command.commands[name]
    assert f"aioq {' '.join(path)}" in page
    for param in command.params:
        if param.param_type_name == "option":
            assert re.search(rf"(?<![\w-]){param.opts[0]}(?![\w-])", page), param.opts
        else:
            assert (param.metavar or param.name.upper()) in page, param.name
    assert "Exit status" in (command.help or ""), "the --help states the exit codes"
