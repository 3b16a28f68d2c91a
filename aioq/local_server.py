"""A local JetStream server (or cluster) for development, run until SIGINT or SIGTERM.

The work of ``aioq server``: one writer per store directory, a free monitoring port when the
config's is taken, and a line on what the server's fsync setting means for acknowledged jobs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from aioq.embedded import EmbeddedNats
from aioq.errors import BrokerUnavailableError, ConfigError
from aioq.local_cluster import LocalCluster

__all__ = ["PACKAGED_CONFIG", "default_config", "fsync_statement", "serve"]

#: The nats-server config that ships with aioq (JetStream on, monitoring on 8222).
PACKAGED_CONFIG = Path(__file__).resolve().parent / "nats.conf"


def _say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def serve(
    store_dir: Path,
    port: int = 4222,
    monitor_port: int | None = None,
    config: Path | None = None,
    cluster: int | None = None,
    say: Callable[[str], None] = _say,
) -> None:
    """Run a server on `store_dir` (or a cluster of `cluster` nodes under it) until stopped.

    Raises:
        ConfigError: another ``aioq server`` runs on `store_dir`.
        BrokerUnavailableError: the server did not start, or exited while running.
    """
    config = config or default_config()
    store_dir.mkdir(parents=True, exist_ok=True)
    with _store_lock(store_dir):
        stopped = _stop_on_signals()
        if cluster is not None:
            LocalCluster(store_dir / "cluster", cluster).serve(stopped, say)
            return
        embedded = _start(config, port, store_dir, monitor_port)
        try:
            say(
                f"nats-server running at {embedded.url} (monitoring "
                f"{embedded.monitor_url or 'off'}, store {store_dir}, config {config}); "
                "Ctrl-C stops it"
            )
            say(fsync_statement(embedded.monitor_url))
            while not stopped.wait(0.5):
                if not embedded.running:
                    raise BrokerUnavailableError(
                        f"nats-server exited; see its log at {embedded.log_file}"
                    )
        finally:
            embedded.stop()


def default_config() -> Path:
    """``deploy/nats.conf`` if the current directory has one, else aioq's own copy."""
    local = Path("deploy/nats.conf")
    return local if local.is_file() else PACKAGED_CONFIG


def fsync_statement(monitor_url: str | None) -> str:
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


def _start(config: Path, port: int, store_dir: Path, monitor_port: int | None) -> EmbeddedNats:
    """Start the server; on the config's monitoring port unless that one is taken.

    A second local server (another project's, a test run's) then starts too: only its client
    port has to differ. With port 0 the monitoring port is picked freely as well.
    """
    if monitor_port is None and port != 0:
        embedded = EmbeddedNats(config=config, port=port, store_dir=store_dir)
        try:
            embedded.start()
            return embedded
        except BrokerUnavailableError as e:
            if "monitor port" not in str(e):
                raise
        sys.stderr.write(
            "the config's monitoring port is taken (another nats-server?): using a free one\n"
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
            raise ConfigError(
                f"{store_dir} is the store of another running `aioq server`: give this one "
                "its own with --store-dir"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield
