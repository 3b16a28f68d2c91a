"""A TCP proxy on loopback whose link a test can cut and restore.

``reset`` closes every connection and refuses new ones (the peer sees a reset at once);
``blackhole`` stops moving bytes in both directions and holds new connections silent, like a
partition the peers only notice by their own timeouts; nothing is dropped, so a link restored
before either side gives up carries on, unless it is restored ``stale``: then the connections
of before stay silent for good and only new ones work. `rate` makes the link slow: bytes from
the server reach the client at most that fast.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["reset", "blackhole"]
_CHUNK = 65536


class Proxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.cut_mode: Mode | None = None
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stale: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        #: Bytes per second from the server to the client (None: as fast as they come).
        self.rate: float | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._close_links()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def cut(self, mode: Mode = "reset") -> None:
        """Cut the link; ``reset`` also closes every open connection."""
        self.cut_mode = mode
        self._open.clear()
        if mode == "reset":
            self._close_links()

    def restore(self, *, stale: bool = False) -> None:
        """Let bytes and new connections through again.

        With `stale`, connections opened before the restore stay silent for good, as when a
        firewall or NAT lost their state: only a new connection works.
        """
        if stale:
            self._stale.update(self._writers)
        self.cut_mode = None
        self._open.set()

    def _close_links(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_mode == "reset":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink, (writer, up_writer)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while True:
                await self._open.wait()
                data = await source.read(_CHUNK)
                if not data:
                    break
                await self._open.wait()  # a blackhole holds what was read until the restore
                if sink in self._stale or pair[0] in self._stale:
                    continue  # a stale link swallows everything
                sink.write(data)
                await sink.drain()
                if self.rate and sink is pair[0]:  # server to client
                    await asyncio.sleep(len(data) / self.rate)
        except (ConnectionError, OSError):
            pass
        finally:
            for writer in pair:
                self._writers.discard(writer)
                self._stale.discard(writer)
                with contextlib.suppress(Exception):
                    writer.transport.abort()
