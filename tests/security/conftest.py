"""Servers configured per test (TLS, auth, permissions), each on its own loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aioq.embedded import EmbeddedNats

from .pki import Pki, make_pki

ServerFactory = Callable[[str], EmbeddedNats]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def configured_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start a JetStream server with a config written now: ``configured_server(text)``."""
    started: list[EmbeddedNats] = []

    def start(config: str) -> EmbeddedNats:
        path = tmp_path / f"nats-{len(started)}.conf"
        store = tmp_path / f"store-{len(started)}"
        path.write_text(f"host: 127.0.0.1\n{config}\njetstream {{ store_dir: {store} }}\n")
        server = EmbeddedNats(config=path, port=0)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
