"""Record writes: published without waiting, acknowledged in nats-py's reading loop."""

from __future__ import annotations

import uuid

from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig

from aioq._nats.record_writes import RecordWrites
from tests.helpers import eventually


async def test_every_write_is_acknowledged_and_stored(nc: NatsClient) -> None:
    js = nc.jetstream()
    name = f"RW_{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
    try:
        writes = RecordWrites(nc, js, f"{name}.")
        await writes.start()
        for i in range(500):
            await writes.write(f"k{i}", b"x")
        # Sooner than the 5 s after which an unanswered write is taken as lost.
        await eventually(lambda: writes.unanswered == 0, timeout=3, what="every acknowledgement")
        assert (await js.stream_info(name)).state.messages == 500
    finally:
        await js.delete_stream(name)


async def test_a_refused_write_is_written_again_until_it_is_stored(nc: NatsClient) -> None:
    js = nc.jetstream()
    name = f"RW_{uuid.uuid4().hex[:8]}"
    writes = RecordWrites(nc, js, f"{name}.")
    await writes.start()
    await writes.write("k", b"first")  # no stream yet: the server answers "no responders"
    await eventually(lambda: writes.unanswered == 0, timeout=5)
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
    try:

        async def stored() -> bool:
            return (await js.stream_info(name)).state.messages == 1

        await eventually(stored, timeout=10)
        assert (await js.get_msg(name, subject=f"{name}.k")).data == b"first"
    finally:
        await js.delete_stream(name)
