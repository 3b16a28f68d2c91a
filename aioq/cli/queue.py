"""`aioq queue pause|resume`: hold back or release a queue for all its workers at once."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

import typer

from aioq.app import Aarq
from aioq.cli._common import (
    AppOption,
    Connection,
    CredsOption,
    PasswordOption,
    PrefixOption,
    ServerOption,
    TokenOption,
    UserOption,
    fail_on_errors,
    run_with_app,
)

__all__ = ["parse_until", "queue_app"]

queue_app = typer.Typer(
    help="Pause and resume queues (nats-server 2.11+).",
    no_args_is_help=True,
    add_completion=False,
)

_CLOCK_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")

QueueArgument = Annotated[
    str, typer.Argument(help="The queue.", metavar="QUEUE", show_default=False)
]


def parse_until(text: str, now: datetime | None = None) -> datetime:
    """A pause end: ``HH:MM[:SS]`` (the next such local time) or an ISO 8601 date and time.

    Raises:
        ValueError: The text is neither, or names a time that has passed.
    """
    now = now or datetime.now().astimezone()
    match = _CLOCK_RE.match(text.strip())
    if match:
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"{text!r} is not a time of day")
        moment = now.replace(hour=hour, minute=minute, second=second, microsecond=0)
        return moment if moment > now else moment + timedelta(days=1)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither HH:MM nor an ISO 8601 date and time (2026-01-31T09:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the local time zone
    if moment <= now:
        raise ValueError(f"{text!r} has passed already")
    return moment


def _until_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_until(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


@queue_app.command()
def pause(
    queue: QueueArgument,
    until: Annotated[
        str | None,
        typer.Option(
            help="When the pause ends by itself: HH:MM (next such local time) or an ISO 8601 "
            r"date and time. \[default: until `aioq queue resume`]",
            metavar="TIME",
            show_default=False,
        ),
    ] = None,
    app_path: AppOption = None,
    server: ServerOption = None,
    prefix: PrefixOption = None,
    creds: CredsOption = None,
    token: TokenOption = None,
    user: UserOption = None,
    password: PasswordOption = None,
) -> None:
    """Stop every worker of QUEUE from starting its jobs; they stay queued.

    Running jobs finish; workers keep running and pick up where they left off on resume.
    """
    end = _until_option(until)
    with fail_on_errors():
        app = Connection(server, prefix, creds, token, user, password).app(app_path)

        async def act(app: Aarq) -> datetime | None:
            return await app.pause_queue(queue, end)

        run_with_app(app, act)
    if end is None:
        typer.echo(f"queue {queue} paused until resumed (aioq queue resume {queue})")
    else:
        local = end.astimezone()
        typer.echo(f"queue {queue} paused until {local.strftime('%Y-%m-%d %H:%M:%S %Z')}")


@queue_app.command()
def resume(
    queue: QueueArgument,
    app_path: AppOption = None,
    server: ServerOption = None,
    prefix: PrefixOption = None,
    creds: CredsOption = None,
    token: TokenOption = None,
    user: UserOption = None,
    password: PasswordOption = None,
) -> None:
    """Let the workers of QUEUE start its jobs again, at once."""
    with fail_on_errors():
        app = Connection(server, prefix, creds, token, user, password).app(app_path)

        async def act(app: Aarq) -> None:
            await app.resume_queue(queue)

        run_with_app(app, act)
    typer.echo(f"queue {queue} resumed")
