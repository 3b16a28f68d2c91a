"""Options and error handling shared by the commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import msgspec
import typer

from aioq.app import Aarq
from aioq.cli._loader import load_app
from aioq.errors import AioqError
from aioq.naming import validate_queue

__all__ = [
    "AppOption",
    "Connection",
    "CredsOption",
    "JsonOption",
    "PasswordOption",
    "PrefixOption",
    "ServerOption",
    "TokenOption",
    "UserOption",
    "echo_json",
    "fail",
    "fail_on_errors",
    "require_queue",
    "run_with_app",
    "unknown_queue",
]

T = TypeVar("T")

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        envvar="NATS_URL",
        help=r"NATS server URL(s), comma-separated. \[default: $NATS_URL, else the app's own]",
        show_envvar=False,
        metavar="URL",
    ),
]


@contextlib.contextmanager
def fail_on_errors() -> Iterator[None]:
    """Turn an `AioqError` into one line on stderr and exit code 1; Ctrl-C into exit 130."""
    try:
        yield
    except AioqError as e:
        logging.getLogger("aioq").debug("error details", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


PrefixOption = Annotated[
    str | None,
    typer.Option(
        "--prefix",
        help=r"Namespace of the subjects, streams and buckets. \[default: the app's, else aioq]",
        metavar="PREFIX",
        show_default=False,
    ),
]
CredsOption = Annotated[
    Path | None,
    typer.Option(
        "--creds",
        envvar="NATS_CREDS",
        exists=True,
        dir_okay=False,
        help=r"NATS credentials file (JWT and nkey). \[default: $NATS_CREDS, else the app's]",
        show_envvar=False,
        metavar="FILE",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="NATS_TOKEN",
        help=r"NATS authentication token. \[default: $NATS_TOKEN, else the app's]",
        show_envvar=False,
        metavar="TOKEN",
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="NATS_USER",
        help=r"NATS user name. \[default: $NATS_USER, else the app's]",
        show_envvar=False,
        metavar="USER",
    ),
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="NATS_PASSWORD",
        help=r"NATS password. \[default: $NATS_PASSWORD, else the app's]",
        show_envvar=False,
        metavar="PASSWORD",
    ),
]
AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        help="Your app, as module:attribute: its servers, prefix and credentials become the "
        "defaults, and results decode to its tasks' types.",
        metavar="APP_PATH",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")
]


@dataclass(frozen=True, slots=True)
class Connection:
    """The connection options of a command: server, prefix and credentials."""

    server: str | None = None
    prefix: str | None = None
    creds: Path | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None

    def apply(self, app: Aarq) -> Aarq:
        """Override `app`'s own settings with the options that were given."""
        app.use_connection(
            servers=self.server,
            prefix=self.prefix,
            credentials=str(self.creds) if self.creds is not None else None,
            token=self.token,
            user=self.user,
            password=self.password,
        )
        return app

    def app(self, app_path: str | None = None) -> Aarq:
        """The app at `app_path` (or a bare one, prefix ``aioq``), with the options applied."""
        app = load_app(app_path) if app_path else Aarq()
        return self.apply(app)


def run_with_app(app: Aarq, action: Callable[[Aarq], Awaitable[T]]) -> T:
    """Run `action(app)` in a new event loop and close the app's connection afterwards."""

    async def main() -> T:
        try:
            return await action(app)
        finally:
            await app.close()

    return asyncio.run(main())


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with `code`."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def echo_json(value: Any) -> None:
    """Print `value` (wire structs included) as one line of JSON."""
    typer.echo(msgspec.json.encode(value).decode())


async def require_queue(app: Aarq, queue: str, hint: str = "") -> None:
    """Exit with code 1 and a clear message unless `queue` is one of the app's queues."""
    validate_queue(queue)
    known = [q.name for q in await app.queues()]
    if queue not in known:
        fail(unknown_queue(queue, app.prefix, known) + hint)


def unknown_queue(queue: str, prefix: str, known: list[str]) -> str:
    """The message for a queue that is not there."""
    return (
        f"unknown queue {queue!r} under prefix {prefix!r}: no worker pulled from it and it "
        f"holds no jobs or dead letters (queues: {', '.join(known) or 'none'})"
    )
