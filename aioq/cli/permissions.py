"""`aioq permissions`: the nats-server permissions block of a role."""

from __future__ import annotations

from typing import Annotated

import typer

from aioq.cli._command import command
from aioq.permissions import Role, permissions

__all__ = ["permissions_command"]


@command
def permissions_command(
    role: Annotated[
        Role,
        typer.Option(
            "--role",
            "-r",
            case_sensitive=False,
            help="producer, worker, scheduler, dashboard or admin.",
            metavar="ROLE",
        ),
    ],
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            help="A queue the producer may enqueue to or the worker may pull (repeat it).",
            metavar="QUEUE",
            show_default=False,
        ),
    ] = None,
    prefix: Annotated[
        str,
        typer.Option("--prefix", help="The app's prefix.", metavar="PREFIX"),
    ] = "aioq",
    inbox_prefix: Annotated[
        str,
        typer.Option(
            "--inbox-prefix",
            help="The inbox prefix the role's clients connect with (--inbox-prefix, "
            "Aarq(inbox_prefix=...)): give each role its own.",
            metavar="PREFIX",
        ),
    ] = "_INBOX",
) -> None:
    """Print the nats-server permissions block of a role, to put in its user's entry.

    Everything not listed is denied. See docs/security.md for a whole configuration.
    """
    chosen = permissions(role, queues or [], prefix, inbox_prefix)
    scope = f" of queues {', '.join(queues)}" if queues else ""
    print(f"# aioq {chosen.role}{scope}, prefix {prefix}: inside a user's {{ ... }} entry")
    if inbox_prefix == "_INBOX":
        print("# replies on _INBOX.>: give each role its own --inbox-prefix (docs/security.md)")
    if chosen.role is Role.WORKER:
        print("# run these workers with --no-scheduler; the scheduler role runs the scheduler")
    print(chosen.server_block())
