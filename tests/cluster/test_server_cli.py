"""`aioq server --cluster 3` as a process: three nodes up, URLs printed, all stopped on exit."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from aioq import Aarq, Context
from aioq.errors import BrokerError
from aioq.testing.harness import start_worker

from ..helpers import eventually
from ..procs import Procs, cli_env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _run_once(procs: Procs, store: Path, expect: int | None) -> list[str]:
    """Start the cluster, run a job on it with R3 streams, stop it; the URLs it printed.

    With `expect`, the job the first run enqueued must be kept and give `expect`.
    """
    proc = procs.start("server", "--cluster", "3", "--store-dir", str(store))
    await proc.wait_log("Ctrl-C stops it", timeout=60)
    output = proc.log()
    urls = re.findall(r"^n\d: (nats://127\.0\.0\.1:\d+)", output, re.MULTILINE)
    pids = [int(p) for p in re.findall(r"pid (\d+)\)", output)]
    assert len(urls) == 3, output
    assert len(pids) == 3, output
    app = Aarq(urls, prefix="clitest", replicas=3)

    @app.task
    async def add(ctx: Context, a: int, b: int) -> int:
        return a + b

    try:
        if expect is None:  # enqueued with no worker running: kept in the stores
            await add.with_options(job_id="kept").enqueue(2, 3)
        else:
            # Restarted nodes elect their streams' leaders a few seconds after they are up.
            await eventually(lambda: _connects(app), timeout=30, what="the streams' leaders")
            worker = await start_worker(app)
            pending = await app.job("kept")
            assert await pending.result(timeout=30) == expect
            await worker.stop()
    finally:
        await app.close()
    proc.send(signal.SIGTERM)
    assert await proc.wait_exit(30) == 0
    assert not [p for p in pids if _alive(p)], "a node outlived `aioq server`"
    return urls


async def _connects(app: Aarq) -> bool:
    try:
        await app.connect()
    except BrokerError:
        return False
    except TimeoutError:
        return False
    return True


async def test_server_cluster_runs_three_nodes_and_stops_them(tmp_path: Path) -> None:
    procs = Procs(tmp_path, cli_env())
    store = tmp_path / "store"
    try:
        # The second run is on the same ports and serves the first run's job.
        first = await _run_once(procs, store, None)
        assert await _run_once(procs, store, 5) == first
    finally:
        procs.reap_all()
    assert sorted(p.name for p in (store / "cluster").iterdir()) == ["n1", "n2", "n3", "ports.json"]
