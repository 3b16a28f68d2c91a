"""deploy/nats-secure.conf: its role blocks are aioq's, and the server runs it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from aioq import Aarq, Context
from aioq.embedded import EmbeddedNats
from aioq.permissions import permissions
from aioq.testing.harness import start_worker

from .pki import Pki

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nats-secure.conf"
ROLES = ("admin", "producer", "worker", "scheduler", "dashboard")


def test_the_role_blocks_are_what_aioq_permissions_prints() -> None:
    text = CONF.read_text()
    chunks = text.split("# (aioq permissions ")[1:]
    assert len(chunks) == len(ROLES)
    for chunk in chunks:
        command = chunk.split(")", 1)[0]
        role = re.search(r"--role (\w+)", command)
        assert role is not None
        queues = re.findall(r"-q (\S+)", command)
        inbox = re.search(r"--inbox-prefix (\S+)", command)
        assert inbox is not None
        expected = permissions(role[1], queues, inbox_prefix=inbox[1])
        assert expected.server_block(indent=6) in chunk, role[1]


@pytest.fixture
def secure_server(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmbeddedNats]:
    text = CONF.read_text()
    for old, new in (
        ("listen: 0.0.0.0:4222", "listen: 127.0.0.1:-1"),
        ("http: 127.0.0.1:8222", "http: 127.0.0.1:-1"),
        ("/etc/nats/tls/server-cert.pem", str(pki.server_cert)),
        ("/etc/nats/tls/server-key.pem", str(pki.server_key)),
        ("/etc/nats/tls/ca.pem", str(pki.ca)),
        ("/var/lib/nats/jetstream", str(tmp_path / "store")),
    ):
        assert old in text
        text = text.replace(old, new)
    for role in ROLES:
        monkeypatch.setenv(f"AIOQ_{role.upper()}_PASSWORD", f"{role}-pw")
    path = tmp_path / "nats-secure.conf"
    path.write_text(text)
    server = EmbeddedNats(config=path, port=0)
    server.start()
    yield server
    server.stop()


async def test_the_deploy_config_runs_jobs_over_mutual_tls(
    secure_server: EmbeddedNats, pki: Pki
) -> None:
    url = "tls://" + secure_server.url.split("://", 1)[1]

    def app_as(user: str) -> Aarq:
        app = Aarq(
            url,
            user=user,
            password=f"{user}-pw",
            tls_ca=pki.ca,
            tls_cert=pki.client_cert,
            tls_key=pki.client_key,
            inbox_prefix=f"_INBOX_{user}",
        )

        @app.task(queue="email")
        async def send(ctx: Context, to: str) -> str:
            return to

        return app

    admin, producer, worker_app = app_as("admin"), app_as("producer"), app_as("worker")
    try:
        await admin.connect()  # the admin provisions the streams
        job = await producer.tasks["send"].enqueue("ada@example.com")
        worker = await start_worker(worker_app, ["email"], scheduler=False)
        try:
            assert await job.result(timeout=10) == "ada@example.com"
        finally:
            await worker.stop()
    finally:
        for app in (admin, producer, worker_app):
            await app.close()
