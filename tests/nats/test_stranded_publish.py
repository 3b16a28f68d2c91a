"""A publish stranded by a server restart is sent again on reconnect, not left to time out."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta

from aioq import Aarq, Context
from aioq._nats import NatsBroker
from aioq.embedded import EmbeddedNats
from aioq.transport import HeldJob

from ..helpers import eventually, frozen

# What a scheduler's release may take once the server is back: the client's reconnect wait
# (1 s) and a round trip, with room for a loaded machine. The stranded publish's own timeout
# (5 s) is well beyond it.
BACK_WITHIN_S = 3.5


async def test_a_release_stranded_by_a_server_restart_is_resent_on_reconnect(
    own_server: EmbeddedNats,
) -> None:
    server = own_server
    app = Aarq(server.url, prefix="strand")

    @app.task
    async def noop(ctx: Context) -> None:
        """Never runs here: the test only moves the job."""

    try:
        broker = await app.connect()
        assert isinstance(broker, NatsBroker)
        when = datetime.now(UTC) + timedelta(seconds=30)
        await noop.with_options(job_id="stranded", run_at=when).enqueue()
        source = await broker.held.open()
        held: list[HeldJob] = []

        async def fetched() -> bool:
            held.extend(await source.fetch(1.0))
            return bool(held)

        await eventually(fetched, what="the held job")
        # A stopped server takes the bytes into its socket and never answers them.
        assert server.pid is not None
        await frozen(server.pid)
        releasing = asyncio.create_task(held[0].release())
        await eventually(lambda: broker.nc.pending_data_size == 0, what="the publish written")
        os.kill(server.pid, signal.SIGKILL)
        await eventually(lambda: not server.running, what="the server gone")
        await asyncio.to_thread(server.start)
        back = time.monotonic()
        async with asyncio.timeout(10):
            duplicate = await releasing
        took = time.monotonic() - back
        assert duplicate is False
        assert took < BACK_WITHIN_S, f"the release took {took:.1f}s after the server was back"
        info = await broker.js.stream_info(
            app.names.jobs_stream, subjects_filter=app.names.job_subject("default")
        )
        # Stored once, however often it was sent.
        assert info.state.subjects == {app.names.job_subject("default"): 1}
        await source.close()
    finally:
        await app.close()
