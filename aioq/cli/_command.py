"""How a command runs: its connection options as one value, its errors as one line."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, NoReturn

import typer

from aioq.app import Aarq
from aioq.cli._loader import load_app
from aioq.cli._options import (
    CredsOption,
    InboxPrefixOption,
    NkeyOption,
    PasswordOption,
    PrefixOption,
    ServerOption,
    TlsCaOption,
    TlsCertOption,
    TlsKeyOption,
    TokenOption,
    UserOption,
)
from aioq.errors import AioqError
from aioq.naming import validate_queue

__all__ = ["CONNECTION_OPTIONS", "Connection", "command", "fail", "require_queue", "unknown_queue"]


@dataclass(frozen=True, slots=True)
class Connection:
    """The connection options of a command: server, prefix, credentials and TLS files."""

    server: str | None = None
    prefix: str | None = None
    creds: Path | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None
    nkey: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    inbox_prefix: str | None = None

    def app(self, app_path: str | None = None) -> Aarq:
        """The app at `app_path` (or a bare one, prefix ``aioq``), with the options applied."""
        app = load_app(app_path) if app_path is not None else Aarq()
        app.use_connection(
            servers=self.server,
            prefix=self.prefix,
            credentials=str(self.creds) if self.creds is not None else None,
            token=self.token,
            user=self.user,
            password=self.password,
            nkey_seed=self.nkey,
            tls_ca=self.tls_ca,
            tls_cert=self.tls_cert,
            tls_key=self.tls_key,
            inbox_prefix=self.inbox_prefix,
        )
        return app

    @contextlib.asynccontextmanager
    async def open(self, app_path: str | None = None) -> AsyncIterator[Aarq]:
        """`app(app_path)`, closed on the way out."""
        app = self.app(app_path)
        try:
            yield app
        finally:
            await app.close()


#: The default of a command's `Connection` parameter, which `command` turns into the options.
CONNECTION_OPTIONS: Final = Connection()

_OPTION_TYPES: Final = {
    "server": ServerOption,
    "prefix": PrefixOption,
    "creds": CredsOption,
    "token": TokenOption,
    "user": UserOption,
    "password": PasswordOption,
    "nkey": NkeyOption,
    "tls_ca": TlsCaOption,
    "tls_cert": TlsCertOption,
    "tls_key": TlsKeyOption,
    "inbox_prefix": InboxPrefixOption,
}
assert list(_OPTION_TYPES) == [f.name for f in fields(Connection)]


def command(function: Callable[..., Any]) -> Callable[..., None]:
    """Make `function` a command.

    Its `Connection` parameter stands for the connection options (``--server`` ...
    ``--inbox-prefix``), in its place on the command line; a coroutine function runs in a new
    event loop; an `AioqError` becomes one line on stderr and exit status 1, Ctrl-C exit 130.
    """
    signature = inspect.signature(function, eval_str=True)
    names = [name for name, p in signature.parameters.items() if p.annotation is Connection]
    parameters: list[inspect.Parameter] = []
    for p in signature.parameters.values():
        if p.annotation is not Connection:
            parameters.append(p)
            continue
        parameters += [
            inspect.Parameter(name, p.kind, default=None, annotation=option)
            for name, option in _OPTION_TYPES.items()
        ]

    @functools.wraps(function)
    def run(**options: Any) -> None:
        for name in names:
            options[name] = Connection(*(options.pop(o) for o in _OPTION_TYPES))
        with _fail_on_errors():
            outcome = function(**options)
            if inspect.iscoroutine(outcome):
                asyncio.run(outcome)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


@contextlib.contextmanager
def _fail_on_errors() -> Iterator[None]:
    try:
        yield
    except AioqError as e:
        logging.getLogger("aioq").debug("error details", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with `code`."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


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
