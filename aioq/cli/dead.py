"""`aioq dead list|show|retry|purge`: the dead letters of a queue."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import typer

from aioq.cli._command import CONNECTION_OPTIONS, Connection, command, require_queue
from aioq.cli._options import AppOption, JsonOption, QueueArgument
from aioq.cli._output import echo_json, fields, indent, one_line, stamp, table
from aioq.deadletter import DeadEntry
from aioq.errors import JobNotFoundError
from aioq.wire import DeadReason

__all__ = ["dead_cli"]

dead_cli = typer.Typer(
    name="dead",
    help="The dead letters of a queue: list, show, retry (re-enqueue) and purge them.",
    no_args_is_help=True,
)

TaskFilter = Annotated[
    str | None, typer.Option("--task", help="Only jobs of this task.", metavar="TASK")
]
ErrorTypeFilter = Annotated[
    str | None,
    typer.Option(
        "--error-type",
        help="Only jobs whose last error has this type name (e.g. ValueError).",
        metavar="TYPE",
    ),
]
ReasonFilter = Annotated[
    DeadReason | None,
    typer.Option(
        "--reason",
        case_sensitive=False,
        help="Only this reason: failed, expired, bad_payload, unknown_task, bad_args, crashed.",
        metavar="REASON",
    ),
]
LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit", min=1, help=r"At most this many, oldest first. \[default: all]", metavar="N"
    ),
]


def _filters(
    task: str | None, error_type: str | None, reason: DeadReason | None, limit: int | None
) -> dict[str, Any]:
    return {
        "task": task,
        "error_type": error_type,
        "reason": reason.value if reason is not None else None,
        "limit": limit,
    }


def _entry_json(entry: DeadEntry) -> dict[str, Any]:
    record: dict[str, Any] = {"seq": entry.seq}
    record.update(msgspec.to_builtins(entry.letter))
    return record


@dead_cli.command("list")
@command
async def list_dead(
    queue: QueueArgument,
    task: TaskFilter = None,
    error_type: ErrorTypeFilter = None,
    reason: ReasonFilter = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
    connection: Connection = CONNECTION_OPTIONS,
) -> None:
    """List the dead letters of QUEUE, oldest first.

    Exit status: 0 listed (also when none match); 1 unknown queue (or another error).
    """
    async with connection.open(app_path) as app:
        entries = await app.dead.list(queue, **_filters(task, error_type, reason, limit))
        if not entries:
            await require_queue(app, queue)
    if as_json:
        echo_json([_entry_json(e) for e in entries])
        return
    if not entries:
        typer.echo(f"no dead letters on queue {queue!r} match")
        return
    rows = [
        [
            e.seq,
            e.letter.id,
            e.letter.task,
            e.letter.reason.value,
            e.letter.attempts,
            stamp(e.letter.dead_at),
            one_line(f"{e.letter.error.type}: {e.letter.error.message}")
            if e.letter.error
            else None,
        ]
        for e in entries
    ]
    headers = ["SEQ", "JOB", "TASK", "REASON", "ATTEMPTS", "DEAD SINCE", "ERROR"]
    typer.echo(table(headers, rows))


@dead_cli.command("show")
@command
async def show(
    queue: QueueArgument,
    job_id: Annotated[str, typer.Argument(help="The job id.", metavar="ID", show_default=False)],
    as_json: JsonOption = False,
    app_path: AppOption = None,
    connection: Connection = CONNECTION_OPTIONS,
) -> None:
    """Show one dead letter: its reason, error, traceback and payload.

    Exit status: 0 shown; 1 no dead letter for that job on that queue, or unknown queue.
    """
    async with connection.open(app_path) as app:
        try:
            entry = await app.dead.get(queue, job_id)
        except JobNotFoundError:
            await require_queue(app, queue)
            raise
    if as_json:
        echo_json(_entry_json(entry))
        return
    letter = entry.letter
    error = f"{letter.error.type}: {letter.error.message}" if letter.error else None
    typer.echo(
        fields(
            [
                ("job", letter.id),
                ("queue", letter.queue),
                ("task", letter.task),
                ("reason", letter.reason.value),
                ("attempts", letter.attempts),
                ("dead since", stamp(letter.dead_at)),
                ("enqueued", stamp(letter.enqueued_at)),
                ("worker", letter.worker),
                ("sequence", entry.seq),
                ("error", error),
            ]
        )
    )
    if letter.error and letter.error.traceback:
        typer.echo("traceback:\n" + indent(letter.error.traceback))
    cut = " (truncated)" if letter.payload_truncated else ""
    typer.echo(f"payload{cut}:\n" + indent(_payload_text(letter.payload)))


def _payload_text(payload: bytes) -> str:
    """The payload as indented JSON if it is JSON, else as text (or its repr if binary)."""
    try:
        return msgspec.json.format(msgspec.json.encode(msgspec.json.decode(payload))).decode()
    except (msgspec.DecodeError, UnicodeDecodeError):
        try:
            return payload.decode()
        except UnicodeDecodeError:
            return repr(payload)


@dead_cli.command("retry")
@command
async def retry(
    queue: QueueArgument,
    job_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Job ids to re-enqueue.", metavar="ID", show_default=False),
    ] = None,
    retry_all: Annotated[
        bool,
        typer.Option(
            "--all", help="Re-enqueue every dead letter of QUEUE (that the filters keep)."
        ),
    ] = False,
    task: TaskFilter = None,
    error_type: ErrorTypeFilter = None,
    reason: ReasonFilter = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
    connection: Connection = CONNECTION_OPTIONS,
) -> None:
    """Put dead jobs back on QUEUE, keeping their ids: the IDs named, or --all (filtered).

    Filters without --all select too: `dead retry email --error-type TimeoutError`.

    Exit status: 0 re-enqueued (also when no dead letter matched); 1 a named job has no
    dead letter (nothing is re-enqueued then), or unknown queue; 2 IDs and --all together,
    or neither IDs, --all nor a filter.
    """
    filters = _filters(task, error_type, reason, limit)
    filtered = any(value is not None for value in filters.values())
    if job_ids and (retry_all or filtered):
        raise typer.BadParameter(
            "name job ids, or use --all and filters; not both", param_hint="ID / --all"
        )
    if not job_ids and not (retry_all or filtered):
        raise typer.BadParameter(
            "name the job ids to retry, or pass --all (or a filter)", param_hint="ID / --all"
        )
    async with connection.open(app_path) as app:
        try:
            jobs = await (
                app.dead.retry(queue, job_ids) if job_ids else app.dead.retry(queue, **filters)
            )
        except JobNotFoundError:
            await require_queue(app, queue)
            raise
        if not jobs:
            await require_queue(app, queue)
    if as_json:
        echo_json([{"id": j.id, "task": j.task, "queue": j.queue} for j in jobs])
        return
    if not jobs:
        typer.echo(f"no dead letters on queue {queue!r} match; nothing re-enqueued")
        return
    for job in jobs:
        typer.echo(f"re-enqueued job {job.id} (task {job.task or '-'}, queue {job.queue})")


@dead_cli.command("purge")
@command
async def purge(
    queue: QueueArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    app_path: AppOption = None,
    connection: Connection = CONNECTION_OPTIONS,
) -> None:
    """Delete every dead letter of QUEUE, after asking (unless --yes).

    Exit status: 0 purged (or there was nothing to purge); 1 unknown queue, or the question
    was answered no (or could not be asked: use --yes in scripts).
    """
    async with connection.open(app_path) as app:
        found = (await app.dead.counts()).get(queue, 0)
        if not found:
            await require_queue(app, queue)
            typer.echo(f"no dead letters on queue {queue!r}; nothing to purge")
            return
        if not yes:
            question = f"Delete the {found} dead letters of queue {queue!r}?"
            typer.confirm(question, default=False, abort=True)
        purged = await app.dead.purge(queue)
    typer.echo(f"purged {purged} dead letters of queue {queue!r}")
