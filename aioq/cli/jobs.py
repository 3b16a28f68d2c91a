"""`aioq enqueue` and `aioq job status|result|abort`: one job, from the command line."""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Final

import msgspec
import typer

from aioq.app import Aarq
from aioq.cli._command import APP, Group, command, fail
from aioq.cli._options import AppArgument, JsonOption, argument, option
from aioq.cli._output import echo_json, fields, indent, show, stamp
from aioq.errors import JobAbortedError, JobExpiredError, JobFailedError, ResultTimeoutError
from aioq.job import Job
from aioq.task import Task
from aioq.wire import TERMINAL_STATES, JobRecord, JobState

__all__ = ["NOT_DONE_EXIT", "enqueue", "job_cli"]

#: Exit code of `job result` and `enqueue --wait` when the job has no outcome (yet).
NOT_DONE_EXIT: Final = 3

job_cli = Group("Look at one job by its id: status, result, abort.")

JobIdArgument = Annotated[str, argument("The job id (printed by enqueue).", "ID")]
TimeoutOption = Annotated[float | None, option("--timeout", min=0, metavar="SECONDS",
    help="With --wait: give up after this many seconds (exit 3).", default="wait forever",
)]  # fmt: skip
ArgsArgument = Annotated[str | None, argument(
    "Positional arguments as a JSON array, e.g. '[1, \"two\"]'. " r"\[default: \[]]", "ARGS_JSON"
)]  # fmt: skip
KwargsOption = Annotated[str | None, option("--kwargs", metavar="JSON", default="{}",
    help='Keyword arguments as a JSON object, e.g. \'{"to": "ada@example.com"}\'.',
)]  # fmt: skip
DelayOption = Annotated[float | None, option("--delay", min=0, metavar="SECONDS",
    help="Hold the job this many seconds before it may start.", default="no delay",
)]  # fmt: skip
PriorityOption = Annotated[
    int | None,
    option(
        "--priority",
        min=0,
        max=9,
        help="Priority level, 0 (lowest) to 9 (highest).",
        default="the task's, else 5",
    ),
]
DependsOption = Annotated[
    list[str] | None, option("--depends-on", metavar="ID", help="Wait for job ID (repeatable).")
]
UniqueOption = Annotated[bool, option("--unique", help="Return the job holding TASK+ARGS.")]
UniqueKeyOption = Annotated[
    str | None, option("--unique-key", metavar="KEY", help="Like --unique, keyed by KEY.")
]
GroupOption = Annotated[
    str | None, option("--group", metavar="GROUP", help="Obey GROUP's limits (app.group_limit).")
]


def _parse_json(text: str | None, kind: type, what: str, example: str) -> Any:
    if text is None:
        return kind()
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as e:
        raise typer.BadParameter(
            f"not valid JSON ({e}); example: {example}", param_hint=what
        ) from None
    if not isinstance(value, kind):
        shape = "array" if kind is list else "object"
        raise typer.BadParameter(
            f"must be a JSON {shape}, got {text!r}; example: {example}", param_hint=what
        )
    return value


@command
async def enqueue(
    app_path: AppArgument,
    task: Annotated[str, argument("Registered task name.", "TASK")],
    args_json: ArgsArgument = None,
    kwargs_json: KwargsOption = None,
    delay: DelayOption = None,
    priority: PriorityOption = None,
    depends_on: DependsOption = None,
    unique: UniqueOption = False,
    unique_key: UniqueKeyOption = None,
    group: GroupOption = None,
    wait: Annotated[
        bool, option("--wait", help="Wait for the outcome and print the result.")
    ] = False,
    timeout: TimeoutOption = None,
    as_json: JsonOption = False,
    app: Aarq = APP,
) -> None:
    """Enqueue one job of TASK and print its id; with --wait, its result too.

    With --unique or --unique-key, an enqueue that finds the key held prints the job that
    holds it. Exit status: 0 enqueued (with --wait: succeeded); 1 an error, or with --wait
    the job failed, expired or was aborted; 2 bad usage (e.g. ARGS_JSON not an array); 3
    with --wait --timeout: no outcome in time.
    """
    _check_timeout(wait, timeout)
    args = _parse_json(args_json, list, "ARGS_JSON", "'[1, \"two\"]'")
    kwargs = _parse_json(kwargs_json, dict, "--kwargs", '\'{"name": "value"}\'')
    found = app.get_task(task)
    if delay is not None and "delay" not in inspect.signature(Task.with_options).parameters:
        fail("--delay needs delayed jobs (Task.with_options(delay=...)), not in this version")
    depends = tuple(depends_on or ())
    call = found.with_options(
        delay=delay,
        priority=priority,
        depends_on=depends,
        group=group,
        unique=unique,
        unique_key=unique_key,
    )
    job: Job[Any] = await call.enqueue(*args, **kwargs)
    summary = {"id": job.id, "task": job.task, "queue": job.queue, "duplicate": job.duplicate}
    if not as_json:
        what = "job holding the key is" if job.duplicate else "enqueued job"
        typer.echo(f"{what} {job.id} (task {job.task}, queue {job.queue})")
    if wait:
        await _print_outcome(job, timeout, as_json, summary)
    elif as_json:
        echo_json(summary)


def _check_timeout(wait: bool, timeout: float | None) -> None:
    if timeout is not None and not wait:
        raise typer.BadParameter("only with --wait", param_hint="--timeout")


async def _print_outcome(
    job: Job[Any], timeout: float | None, as_json: bool, out: dict[str, Any] | None = None
) -> None:
    """Wait for `job`'s outcome and print its result; else exit with an error line."""
    out = out or {"id": job.id}
    try:
        value = await job.result(timeout=timeout)
    except ResultTimeoutError:
        state = (await job.status()).state
        if as_json:
            echo_json(out)
        fail(f"job {job.id} had no outcome within {timeout}s (state: {state})", NOT_DONE_EXIT)
    except (JobFailedError, JobAbortedError, JobExpiredError) as e:
        record = await job.status()
        if as_json:
            echo_json({**out, "state": record.state, "error": record.error})
        failed = isinstance(e, JobFailedError) and not as_json
        fail(f"{e}; `aioq job status {job.id}` shows the traceback" if failed else str(e))
    done = {**out, "state": JobState.SUCCEEDED, "result": value}
    show(as_json, done, lambda: msgspec.json.encode(value).decode())


@job_cli.command("status")
async def status(job_id: JobIdArgument, as_json: JsonOption = False, app: Aarq = APP) -> None:
    """Show a job's state, attempts, worker, times, progress and last error.

    Exit status: 0 shown; 1 no such job (or another error).
    """
    record = await (await app.job(job_id)).status()
    show(as_json, record, lambda: _describe(record))


def _describe(record: JobRecord) -> str:
    progress = None
    if record.progress is not None:
        note = f" ({record.progress_message})" if record.progress_message else ""
        progress = f"{record.progress:.0%}{note}"
    error = f"{record.error.type}: {record.error.message}" if record.error else None
    result = msgspec.json.encode(record.result).decode() if record.result is not None else None
    text = fields([
        ("job", record.id), ("state", record.state.value), ("task", record.task or None),
        ("queue", record.queue or None), ("attempts", record.attempts or None),
        ("worker", record.worker), ("enqueued", stamp(record.enqueued_at)),
        ("started", stamp(record.started_at)), ("finished", stamp(record.finished_at)),
        ("progress", progress), ("next attempt", stamp(record.retry_at)),
        ("retry of", f"dead letter {record.retry_of}" if record.retry_of else None),
        ("depends on", ", ".join(record.depends_on) if record.depends_on else None),
        ("priority", record.priority), ("group", record.group), ("unique key", record.unique_key),
        ("result", result), ("error", error)
    ])  # fmt: skip
    if record.error and record.error.traceback:
        text += "\ntraceback:\n" + indent(record.error.traceback)
    return text


@job_cli.command("result")
async def result(
    job_id: JobIdArgument,
    wait: Annotated[
        bool, option("--wait", help="Wait for the outcome if the job has none yet.")
    ] = False,
    timeout: TimeoutOption = None,
    app: Aarq = APP,
) -> None:
    """Print a finished job's return value as JSON.

    Exit status: 0 printed; 1 the job failed, expired or was aborted, or no such job;
    3 no outcome yet (without --wait), or none within --timeout.
    """
    _check_timeout(wait, timeout)
    job = await app.job(job_id)
    state = None if wait else (await job.status()).state
    if state is not None and state not in TERMINAL_STATES:
        message = f"job {job_id} has no outcome yet (state: {state}); --wait waits for it"
        fail(message, NOT_DONE_EXIT)
    await _print_outcome(job, timeout, as_json=False)


@job_cli.command("abort")
async def abort(job_id: JobIdArgument, app: Aarq = APP) -> None:
    """Abort a job: remove it if it waits, cancel it where it runs; it is never retried.

    Exit status: 0 aborted; 1 no such job, or it had already ended.
    """
    job = await app.job(job_id)
    ended = None if await job.abort() else await job.status()
    if ended is not None and ended.state in TERMINAL_STATES:
        fail(f"job {job_id} already ended ({ended.state}); nothing to abort")
    if ended is not None:
        fail(f"job {job_id} could not be aborted (state: {ended.state}); try again")
    typer.echo(f"aborted job {job_id}")
