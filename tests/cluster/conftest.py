"""A real 3-node JetStream cluster on loopback for the whole session, and apps on it.

Tests that kill nodes take `live_cluster`: every node is running again, and the cluster has
its quorum back, before the next test starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from aioq import Aarq
from aioq.local_cluster import LocalCluster
from aioq.testing.harness import delete_prefix

ZONES = [["az:1"], ["az:2"], ["az:3"]]
# The cluster's JetStream domain, named by apps connected through a leaf node.
DOMAIN = "hub"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three nats-server nodes (tagged ``az:1``..``az:3``, domain ``hub``) routed together."""
    nodes = LocalCluster(
        tmp_path_factory.mktemp("cluster"), tags=ZONES, name="aioq-test", domain=DOMAIN
    )
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def live_cluster(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The session cluster for a test that kills nodes: they are all restarted after it."""
    yield cluster
    for node in cluster.nodes:
        if not node.running:
            node.start()
    cluster.wait_ready()


async def _cleanup(cluster: LocalCluster, app: Aarq) -> None:
    await app.close()
    running = [n.url for n in cluster.nodes if n.running]
    if running:
        await delete_prefix(running[0], app.prefix)


@pytest.fixture
async def capp(cluster: LocalCluster, prefix: str) -> AsyncIterator[Aarq]:
    """An app on every node's URL with R3 streams and a short lease."""
    application = Aarq(cluster.urls, prefix=prefix, ack_wait=2.0, replicas=3)
    yield application
    await _cleanup(cluster, application)
