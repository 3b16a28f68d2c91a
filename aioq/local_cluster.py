"""A local JetStream cluster: nats-server processes routed to each other on loopback.

For development (`aioq server --cluster 3`), tests and benchmarks: each node has its own
ports and store folder under one root directory, so nodes can be killed and started again
on the same ports and data, the way a real node comes back.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aioq.embedded import EmbeddedNats
from aioq.errors import BrokerUnavailableError, ConfigError

__all__ = ["ClusterNode", "LocalCluster", "free_ports", "leaf_linked"]

_HOST = "127.0.0.1"
_POLL_S = 0.05


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (the kernel's picks)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((_HOST, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True, slots=True)
class _Ports:
    client: int
    cluster: int
    http: int
    leaf: int


class ClusterNode:
    """One node of a `LocalCluster`: a named `EmbeddedNats` with fixed ports."""

    def __init__(self, name: str, directory: Path, ports: _Ports, config: str) -> None:
        self.name = name
        self.directory = directory
        self.ports = ports
        directory.mkdir(parents=True, exist_ok=True)
        self.config_file = directory / "nats.conf"
        self.config_file.write_text(config)
        self.server = EmbeddedNats(
            config=self.config_file,
            store_dir=directory / "store",
            log_file=directory / "nats.log",
        )

    @property
    def url(self) -> str:
        """The client URL (fixed, valid whether or not the node runs)."""
        return f"nats://{_HOST}:{self.ports.client}"

    @property
    def monitor_url(self) -> str:
        """The monitoring URL (``/healthz``, ``/jsz``)."""
        return f"http://{_HOST}:{self.ports.http}"

    @property
    def leaf_url(self) -> str:
        """Where leaf nodes connect (``nats-leaf://``)."""
        return f"nats-leaf://{_HOST}:{self.ports.leaf}"

    @property
    def running(self) -> bool:
        """Whether the node's process is alive."""
        return self.server.running

    @property
    def pid(self) -> int | None:
        """The node's process id while it runs."""
        return self.server.pid

    def start(self, timeout: float = 20.0) -> None:
        """Start the node (on its ports and store) unless it runs."""
        self.server.start(timeout)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` (SIGKILL: a crash) and wait for the process to end."""
        pid = self.server.pid
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + 15
        while self.server.running and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the node gracefully (SIGTERM); its data stays."""
        self.server.stop()

    def jsz(self) -> dict[str, Any] | None:
        """The node's ``/jsz`` report, or None if it does not answer."""
        return _get_json(f"{self.monitor_url}/jsz")

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<ClusterNode {self.name} {self.url} {state}>"


class LocalCluster:
    """`size` nats-server nodes forming one JetStream cluster on loopback.

    Args:
        root: Folder of the nodes' configs, stores and logs (``root/n1``, ...); kept on stop.
        size: Number of nodes (3 tolerates the loss of one).
        name: The cluster's name.
        tags: Per-node server tags (``["az:1"]``, ...) for placement; none by default.
        sync_always: Fsync every write before acknowledging (``sync_interval: always``).
        domain: JetStream domain of the cluster: what clients on a leaf node name to reach
            its JetStream (``Aarq(..., jetstream_domain=...)``).

    Example::

        with LocalCluster(tmp_path) as cluster:
            app = Aarq(cluster.urls, replicas=3)
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int = 3,
        *,
        name: str = "aioq-local",
        tags: Sequence[Sequence[str]] | None = None,
        sync_always: bool = False,
        domain: str | None = None,
    ) -> None:
        if size < 1:
            raise ConfigError(f"a cluster needs at least one node, got {size}")
        if tags is not None and len(tags) != size:
            raise ConfigError(f"give one tag list per node: {size} nodes, {len(tags)} lists")
        self.root = Path(root)
        ports = _node_ports(self.root, size)
        routes = [f"nats-route://{_HOST}:{p.cluster}" for p in ports]
        self.nodes = [
            ClusterNode(
                f"n{i + 1}",
                self.root / f"n{i + 1}",
                p,
                node_config(
                    f"n{i + 1}", p, routes, name, (tags or [[]] * size)[i], sync_always, domain
                ),
            )
            for i, p in enumerate(ports)
        ]

    @property
    def urls(self) -> list[str]:
        """Every node's client URL: give all of them to clients, so they can fail over."""
        return [n.url for n in self.nodes]

    def node(self, name: str) -> ClusterNode:
        """The node called `name` (``n1``...)."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, then wait until the JetStream cluster has a leader."""
        try:
            for node in self.nodes:
                node.start(timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node (their data stays under `root`)."""
        for node in self.nodes:
            node.stop()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every running node sees a JetStream meta leader and all its peers.

        Raises:
            BrokerUnavailableError: not within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise BrokerUnavailableError(
                    f"the local cluster formed no JetStream quorum within {timeout:g} s; "
                    f"see the logs under {self.root}"
                )
            time.sleep(_POLL_S)

    def ready(self) -> bool:
        """Whether every running node is healthy, sees a meta leader and every node.

        Healthy (``/healthz``) means the node's streams and consumers have caught up, so a
        cluster restarted on its stores serves them when this turns true.
        """
        running = [n for n in self.nodes if n.running]
        if not running:
            return False
        for node in running:
            meta = (node.jsz() or {}).get("meta_cluster") or {}
            if not meta.get("leader") or meta.get("cluster_size", 0) < len(self.nodes):
                return False
            if _get_json(f"{node.monitor_url}/healthz") is None:
                return False
        return True

    def stream_leader(self, stream: str, account: str = "$G") -> ClusterNode | None:
        """The node leading `stream` now, as the running nodes report it."""
        for node in self.nodes:
            if not node.running:
                continue
            report = _get_json(f"{node.monitor_url}/jsz?acc={account}&streams=true")
            for acc in (report or {}).get("account_details") or []:
                for entry in acc.get("stream_detail") or []:
                    if entry.get("name") == stream:
                        leader = (entry.get("cluster") or {}).get("leader")
                        if leader:
                            return self.node(leader)
        return None

    def serve(self, stopped: threading.Event, say: Callable[[str], None] = print) -> None:
        """Start, say where each node listens, run until `stopped` is set, stop every node.

        A node that exits meanwhile (killed to try a node loss) is reported once; the others
        keep running.
        """
        try:
            self.start()
            for node in self.nodes:
                say(f"{node.name}: {node.url} (monitoring {node.monitor_url}, pid {node.pid})")
            say(f"JetStream cluster of {len(self.nodes)} nodes, stores under {self.root}")
            say(f"connect with: aioq worker app:app -s {','.join(self.urls)}; Ctrl-C stops it")
            reported: set[str] = set()
            while not stopped.wait(0.5):
                for node in self.nodes:
                    if not node.running and node.name not in reported:
                        reported.add(node.name)
                        say(f"node {node.name} exited; see {node.directory / 'nats.log'}")
        finally:
            self.stop()

    def leaf(self, directory: str | os.PathLike[str], name: str = "leaf") -> EmbeddedNats:
        """A leaf node linked to every node of this cluster, without JetStream of its own.

        Its clients use the cluster's JetStream through it (the API requests and the jobs
        travel over the leaf link), so a worker at the edge connects to it only. Returned
        unstarted; it keeps trying the cluster while the link is down.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        remotes = ", ".join(f'"{n.leaf_url}"' for n in self.nodes)
        config = folder / "leaf.conf"
        config.write_text(
            f"server_name: {name}\n"
            f"listen: {_HOST}:-1\n"
            f"http: {_HOST}:-1\n"
            f'leafnodes {{\n  reconnect: "1s"\n  remotes: [ {{ urls: [{remotes}] }} ]\n}}\n'
        )
        return EmbeddedNats(config=config, log_file=folder / "nats.log", jetstream=False)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def leaf_linked(leaf: EmbeddedNats) -> bool:
    """Whether a leaf node (`LocalCluster.leaf`) has its link to the cluster up."""
    url = leaf.monitor_url
    report = _get_json(f"{url}/leafz") if url else None
    return bool((report or {}).get("leafnodes"))


def _node_ports(root: Path, size: int) -> list[_Ports]:
    """The ports of the last cluster kept in `root` if they are free still, else new ones.

    Stable ports keep the printed URLs valid from one run to the next.
    """
    saved = root / "ports.json"
    try:
        flat = [int(p) for p in json.loads(saved.read_text())]
    except (OSError, ValueError, TypeError):
        flat = []
    if len(flat) != 4 * size or not all(_free(p) for p in flat):
        flat = free_ports(4 * size)
        root.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(flat))
    return [_Ports(*flat[i * 4 : i * 4 + 4]) for i in range(size)]


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As nats-server binds: a port in TIME_WAIT after the last run is free to it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def node_config(
    name: str,
    ports: _Ports,
    routes: Sequence[str],
    cluster: str,
    tags: Sequence[str],
    sync_always: bool,
    domain: str | None = None,
) -> str:
    """The nats-server config of one loopback node (store folder given on the command line)."""
    lines = [
        f"server_name: {name}",
        f"listen: {_HOST}:{ports.client}",
        f"http: {_HOST}:{ports.http}",
        "jetstream {",
        "  max_memory_store: 64MB",
        "  max_file_store: 4GB",
        *(["  sync_interval: always"] if sync_always else []),
        *([f"  domain: {domain}"] if domain else []),
        "}",
        "cluster {",
        f"  name: {cluster}",
        f"  listen: {_HOST}:{ports.cluster}",
        f"  routes: [{', '.join(routes)}]",
        "}",
        "leafnodes {",
        f"  listen: {_HOST}:{ports.leaf}",
        "}",
    ]
    if tags:
        lines.append(f"server_tags: [{', '.join(json.dumps(t) for t in tags)}]")
    return "\n".join(lines) + "\n"


def _get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (OSError, ValueError, urllib.error.URLError):
        return None
