"""How a command runs: its option groups as values, its errors as one line."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import sys
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import typer

from aioq.app import Aarq
from aioq.cli._loader import load_app
from aioq.cli._options import option
from aioq.errors import AioqError
from aioq.naming import validate_queue

__all__ = [
    "APP",
    "CONNECTION_OPTIONS",
    "Connection",
    "Group",
    "command",
    "fail",
    "require_queue",
    "unknown_queue",
]


def _nats(*flags: str, help: str, env: str = "", own: str = "", **more: Any) -> Any:
    """A connection option read from ``$NATS_<FLAG>`` (or `env`) when not given."""
    name = flags[0].lstrip("-").upper().replace("-", "_")
    env = env or f"NATS_{name}"
    more.setdefault("metavar", name)
    default = f"${env}, else the app's{own}"
    return option(*flags, envvar=env, show_envvar=False, help=help, default=default, **more)


@dataclasses.dataclass(frozen=True, slots=True)
class Connection:
    """The connection options of a command: its app, server, prefix, credentials and TLS files.

    Named as the arguments of `Aarq.use_connection`, which takes them all but the app.
    """

    app_path: Annotated[str | None, option("--app", metavar="APP_PATH", show_default=False,
        help="Your app, as module:attribute: its servers, prefix and credentials become the "
        "defaults, and results decode to its tasks' types.",
    )] = None  # fmt: skip
    servers: Annotated[str | None, _nats("--server", "-s", env="NATS_URL", metavar="URL",
        help="NATS server URL(s), comma-separated.", own=" own",
    )] = None  # fmt: skip
    prefix: Annotated[str | None, option("--prefix", metavar="PREFIX",
        help="Namespace of the subjects, streams and buckets.", default="the app's, else aioq",
    )] = None  # fmt: skip
    credentials: Annotated[Path | None, _nats("--creds", metavar="FILE", exists=True,
        dir_okay=False, help="NATS credentials file (JWT and nkey).",
    )] = None  # fmt: skip
    token: Annotated[str | None, _nats("--token", help="NATS authentication token.")] = None
    user: Annotated[str | None, _nats("--user", help="NATS user name.")] = None
    password: Annotated[str | None, _nats("--password", help="NATS password.")] = None
    nkey_seed: Annotated[Path | None, _nats("--nkey", metavar="FILE", exists=True, dir_okay=False,
        help="NKey seed file (SU...) to authenticate with.",
    )] = None  # fmt: skip
    tls_ca: Annotated[Path | None, _nats("--tls-ca", env="NATS_CA", metavar="FILE", exists=True,
        dir_okay=False, help="CA file (PEM) that signed the server's certificate.",
    )] = None  # fmt: skip
    tls_cert: Annotated[Path | None, _nats("--tls-cert", env="NATS_CERT", metavar="FILE",
        exists=True, dir_okay=False, help="Client certificate (PEM) for mutual TLS.",
    )] = None  # fmt: skip
    tls_key: Annotated[Path | None, _nats("--tls-key", env="NATS_KEY", metavar="FILE",
        exists=True, dir_okay=False, help="Private key (PEM) of --tls-cert.",
    )] = None  # fmt: skip
    inbox_prefix: Annotated[str | None, _nats("--inbox-prefix", metavar="PREFIX",
        help="Subject prefix of the reply inboxes, for a user allowed only its own.",
        own=", else _INBOX",
    )] = None  # fmt: skip

    def app(self) -> Aarq:
        """The app (``--app`` or APP_PATH; else a bare one, prefix ``aioq``), options applied."""
        app = load_app(self.app_path) if self.app_path is not None else Aarq()
        given = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del given["app_path"]
        app.use_connection(**given)
        return app

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[Aarq]:
        """`app()`, closed on the way out."""
        app = self.app()
        try:
            yield app
        finally:
            await app.close()


#: The default of a command's `Connection` parameter, which `command` turns into the options.
CONNECTION_OPTIONS: Final = Connection()
#: The default of a command's `Aarq` parameter: the app that the connection options make.
APP: Final[Any] = CONNECTION_OPTIONS


def command(function: Callable[..., Any]) -> Callable[..., None]:
    """Make `function` a command.

    A parameter typed with an option group (a dataclass whose fields are typer options, such
    as `Connection`) stands for the group's options, in its place on the command line, and
    receives them as one value; a field named like a parameter of the command takes that
    parameter's value instead (APP_PATH replaces ``--app``). A parameter typed `Aarq`
    (default `APP`) stands for the `Connection` options and receives their app, open while
    the command runs. A coroutine function runs in a new event loop; an `AioqError` becomes
    one line on stderr and exit status 1, Ctrl-C 130.
    """
    signature = inspect.signature(function, eval_str=True)
    own = signature.parameters
    groups: dict[str, tuple[type, list[str]]] = {}
    parameters: list[inspect.Parameter] = []
    for p in own.values():
        group = Connection if p.annotation is Aarq else p.annotation
        if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
            parameters.append(p)
            continue
        hints = typing.get_type_hints(group, include_extras=True)
        groups[p.name] = (group, [f.name for f in dataclasses.fields(group)])
        parameters += [
            inspect.Parameter(f.name, p.kind, default=f.default, annotation=hints[f.name])
            for f in dataclasses.fields(group)
            if f.name not in own
        ]

    @functools.wraps(function)
    def run(**options: Any) -> None:
        for name, (group, fields) in groups.items():
            options[name] = group(**{f: options[f] if f in own else options.pop(f) for f in fields})
        with _fail_on_errors():
            opened = [name for name in groups if own[name].annotation is Aarq]
            outcome = _with_app(function, options, *opened) if opened else function(**options)
            if inspect.iscoroutine(outcome):
                asyncio.run(outcome)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


async def _with_app(function: Callable[..., Any], options: dict[str, Any], name: str) -> None:
    async with options[name].open() as options[name]:
        await function(**options)


class Group(typer.Typer):
    """A command of subcommands, each made a command by `command`."""

    def __init__(self, help: str) -> None:
        super().__init__(help=help, no_args_is_help=True, add_completion=False)

    def command(
        self, name: str | None = None, **settings: Any
    ) -> Callable[[Callable[..., Any]], Any]:
        register = super().command(name, **settings)
        return lambda function: register(command(function))


@contextlib.contextmanager
def _fail_on_errors() -> Iterator[None]:
    try:
        yield
    except AioqError as e:
        logging.getLogger("aioq").debug("error details", exc_info=True)
        fail(str(e))
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
