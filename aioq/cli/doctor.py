"""`aioq doctor`: audit a running server and aioq's streams, and say how to fix what is off."""

from __future__ import annotations

from typing import Annotated

import typer

from aioq.cli._command import CONNECTION_OPTIONS, Connection, command
from aioq.cli._options import JsonOption, option
from aioq.cli._output import echo_json
from aioq.doctor import Level, audit

__all__ = ["doctor"]

_MARKS = {Level.OK: "ok     ", Level.WARNING: "warning", Level.ERROR: "error  "}


@command
async def doctor(
    monitor: Annotated[
        str | None,
        option(
            "--monitor",
            "-m",
            envvar="NATS_MONITOR_URL",
            show_envvar=False,
            metavar="URL",
            help="The server's monitoring URL (http://HOST:8222), to read its fsync setting.",
            default="$NATS_MONITOR_URL",
        ),
    ] = None,
    as_json: JsonOption = False,
    connection: Connection = CONNECTION_OPTIONS,
) -> None:
    """Check the server and the prefix's streams and consumers; print each finding and its fix.

    With --app, the consumers are also checked against the app's queue settings.
    Exit status: 0 no errors (warnings allowed); 1 an error was found (or the server is
    unreachable).
    """
    from aioq._nats.doctor import gather_facts  # loads nats only here

    app = connection.app()
    queues = None
    if connection.app_path is not None:
        used = {task.queue for task in app.tasks.values()}
        queues = {queue: app.queue(queue).ack_wait for queue in sorted(used)}
    facts = await gather_facts(app.settings, app.names, queues, monitor)
    findings = audit(facts)
    if as_json:
        echo_json([{"level": f.level.name.lower(), "what": f.what, "fix": f.fix} for f in findings])
    else:
        for finding in findings:
            typer.echo(f"{_MARKS[finding.level]}  {finding.what}")
            if finding.fix:
                typer.echo(f"         fix: {finding.fix}")
        errors = sum(f.level is Level.ERROR for f in findings)
        warnings = sum(f.level is Level.WARNING for f in findings)
        typer.echo(f"{errors} error(s), {warnings} warning(s) for prefix {app.prefix!r}")
    if any(f.level is Level.ERROR for f in findings):
        raise typer.Exit(1)
