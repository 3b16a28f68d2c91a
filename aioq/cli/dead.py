"""`aioq dead list|show|retry|purge`: the dead letters of a queue."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Final

import msgspec
import typer

from aioq.app import Aarq
from aioq.cli._command import APP, Group, require_queue
from aioq.cli._moments import MOMENT_HELP, moment
from aioq.cli._options import JsonOption, QueueArgument, argument, option
from aioq.cli._output import fields, indent, one_line, show, show_jobs, stamp, table
from aioq.deadletter import DeadEntry
from aioq.errors import JobNotFoundError
from aioq.wire import DeadReason

__all__ = ["dead_cli"]

dead_cli = Group("The dead letters of a queue: list, show, retry (re-enqueue) and purge them.")


@dataclasses.dataclass(frozen=True, slots=True)
class Filters:
    """Which dead letters a command takes."""

    task: Annotated[
        str | None, option("--task", help="Only jobs of this task.", metavar="TASK")
    ] = None
    error_type: Annotated[str | None, option("--error-type", metavar="TYPE",
        help="Only jobs whose last error has this type name (e.g. ValueError).",
    )] = None  # fmt: skip
    reason: Annotated[DeadReason | None, option("--reason", case_sensitive=False, metavar="REASON",
        help="Only this reason: failed, expired, bad_payload, unknown_task, bad_args, crashed.",
    )] = None  # fmt: skip
    since: Annotated[float | None, option("--since", parser=moment, metavar="TIME",
        help=f"Only jobs dead-lettered at or after TIME: {MOMENT_HELP}.",
    )] = None  # fmt: skip
    until: Annotated[float | None, option("--until", parser=moment, metavar="TIME",
        help="Only jobs dead-lettered before TIME (same forms as --since).",
    )] = None  # fmt: skip
    limit: Annotated[int | None, option("--limit", min=1, metavar="N",
        help="At most this many, oldest first.", default="all",
    )] = None  # fmt: skip

    def check(self) -> None:
        """Refuse a window that holds no time."""
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise typer.BadParameter("--until must be later than --since", param_hint="--until")


ALL: Final = Filters()


def _entry_json(entry: DeadEntry) -> dict[str, Any]:
    return {"seq": entry.seq, **msgspec.to_builtins(entry.letter)}


@dead_cli.command("list")
async def list_dead(
    queue: QueueArgument,
    filters: Filters = ALL,
    as_json: JsonOption = False,
    app: Aarq = APP,
) -> None:
    """List the dead letters of QUEUE, oldest first.

    Exit status: 0 listed (also when none match); 1 unknown queue (or another error).
    """
    filters.check()
    entries = await app.dead.list(queue, **dataclasses.asdict(filters))
    if not entries:
        await require_queue(app, queue)
    headers = ["SEQ", "JOB", "TASK", "REASON", "ATTEMPTS", "DEAD SINCE", "ERROR"]
    rows = [
        [e.seq, e.letter.id, e.letter.task, e.letter.reason.value, e.letter.attempts,
         stamp(e.letter.dead_at), _error(e, cut=True)] for e in entries
    ]  # fmt: skip
    empty = f"no dead letters on queue {queue!r} match"
    show(as_json, [_entry_json(e) for e in entries], lambda: table(headers, rows), empty)


def _error(entry: DeadEntry, cut: bool = False) -> str | None:
    error = entry.letter.error
    text = f"{error.type}: {error.message}" if error else None
    return one_line(text) if text and cut else text


@dead_cli.command("show")
async def show_dead(
    queue: QueueArgument,
    job_id: Annotated[str, argument("The job id.", "ID")],
    as_json: JsonOption = False,
    app: Aarq = APP,
) -> None:
    """Show one dead letter: its reason, error, traceback and payload.

    Exit status: 0 shown; 1 no dead letter for that job on that queue, or unknown queue.
    """
    try:
        entry = await app.dead.get(queue, job_id)
    except JobNotFoundError:
        await require_queue(app, queue)
        raise
    show(as_json, _entry_json(entry), lambda: _describe(entry))


def _describe(entry: DeadEntry) -> str:
    letter = entry.letter
    text = fields([
        ("job", letter.id), ("queue", letter.queue), ("task", letter.task),
        ("reason", letter.reason.value), ("attempts", letter.attempts),
        ("dead since", stamp(letter.dead_at)), ("enqueued", stamp(letter.enqueued_at)),
        ("worker", letter.worker), ("sequence", entry.seq), ("error", _error(entry))
    ])  # fmt: skip
    if letter.error and letter.error.traceback:
        text += "\ntraceback:\n" + indent(letter.error.traceback)
    cut = " (truncated)" if letter.payload_truncated else ""
    return f"{text}\npayload{cut}:\n" + indent(_payload_text(letter.payload))


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
async def retry(
    queue: QueueArgument,
    job_ids: Annotated[list[str] | None, argument("Job ids to re-enqueue.", "ID")] = None,
    retry_all: Annotated[
        bool, option("--all", help="Re-enqueue every dead letter of QUEUE (that the filters keep).")
    ] = False,
    filters: Filters = ALL,
    as_json: JsonOption = False,
    app: Aarq = APP,
) -> None:
    """Put dead jobs back on QUEUE, keeping their ids: the IDs named, or --all (filtered).

    Filters without --all select too: `dead retry email --error-type TimeoutError`, or a
    window: `dead retry email --since 2026-12-01T10:00 --until 2026-12-01T11:00 --reason failed`.

    Exit status: 0 re-enqueued (also when no dead letter matched); 1 a named job has no
    dead letter (nothing is re-enqueued then), or unknown queue; 2 IDs and --all together,
    or neither IDs, --all nor a filter.
    """
    filters.check()
    selected = retry_all or filters != ALL
    if bool(job_ids) == selected:
        problem = "name job ids, or use --all and filters; not both" if job_ids else (
            "name the job ids to retry, or pass --all (or a filter)")  # fmt: skip
        raise typer.BadParameter(problem, param_hint="ID / --all")
    try:
        chosen = {"job_ids": job_ids} if job_ids else dataclasses.asdict(filters)
        jobs = await app.dead.retry(queue, **chosen)
    except JobNotFoundError:
        await require_queue(app, queue)
        raise
    if not jobs:
        await require_queue(app, queue)
    empty = f"no dead letters on queue {queue!r} match; nothing re-enqueued"
    show_jobs(as_json, jobs, "re-enqueued job", empty)


@dead_cli.command("purge")
async def purge(
    queue: QueueArgument,
    yes: Annotated[bool, option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    app: Aarq = APP,
) -> None:
    """Delete every dead letter of QUEUE, after asking (unless --yes).

    Exit status: 0 purged (or there was nothing to purge); 1 unknown queue, or the question
    was answered no (or could not be asked: use --yes in scripts).
    """
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
