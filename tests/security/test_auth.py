"""Authentication by password, token, NKey seed and .creds (JWT); secrets never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import nkeys
import pytest

from aioq import Aarq
from aioq.errors import BrokerUnavailableError, ConfigError
from aioq.settings import redact_url

from ..procs import cli_env, run_cli
from .conftest import ServerFactory
from .pki import make_operator, new_nkey
from .roundtrip import run_one_job

PASSWORD = "pw-Zq81-very-secret"
TOKEN = "tok-Hk27-very-secret"


def _with_userinfo(url: str, userinfo: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{userinfo}@{rest}"


async def test_user_and_password(configured_server: ServerFactory) -> None:
    server = configured_server(f'authorization {{ user: app, password: "{PASSWORD}" }}')
    await run_one_job(Aarq(server.url, prefix="pw", user="app", password=PASSWORD))
    # In the URL works too.
    await run_one_job(Aarq(_with_userinfo(server.url, f"app:{PASSWORD}"), prefix="pw2"))


async def test_wrong_password_is_one_clear_error_without_the_secret(
    configured_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = configured_server(f'authorization {{ user: app, password: "{PASSWORD}" }}')
    wrong = "wrong-Pw-4417"
    caplog.set_level(logging.DEBUG)
    messages = []
    for app in (
        Aarq(server.url, user="app", password=wrong, connect_timeout=1),
        Aarq(_with_userinfo(server.url, f"app:{wrong}"), connect_timeout=1),
        Aarq(server.url, token=wrong, connect_timeout=1),
    ):
        with pytest.raises(BrokerUnavailableError) as raised:
            await app.connect()
        messages.append(str(raised.value))
        assert "refused the credentials" in messages[-1]
        assert wrong not in messages[-1]
        assert wrong not in repr(app.settings)
    assert wrong not in caplog.text
    assert "app:***@" in messages[1]


def test_redact_url() -> None:
    assert redact_url("nats://u:p4ss@h:4222") == "nats://u:***@h:4222"
    assert redact_url("tls://s3cr3t@h:4222") == "tls://***@h:4222"
    assert redact_url("nats://h:4222") == "nats://h:4222"


async def test_token(configured_server: ServerFactory) -> None:
    server = configured_server(f'authorization {{ token: "{TOKEN}" }}')
    await run_one_job(Aarq(server.url, prefix="tok", token=TOKEN))


async def test_nkey_seed_file(configured_server: ServerFactory, tmp_path: Path) -> None:
    user = new_nkey(nkeys.PREFIX_BYTE_USER)
    seed = tmp_path / "user.nk"
    seed.write_bytes(user.seed + b"\n")
    server = configured_server(f"authorization {{ users: [ {{ nkey: {user.public} }} ] }}")
    await run_one_job(Aarq(server.url, prefix="nk", nkey_seed=seed))
    stranger = tmp_path / "stranger.nk"
    stranger.write_bytes(new_nkey(nkeys.PREFIX_BYTE_USER).seed)
    with pytest.raises(BrokerUnavailableError, match="refused the credentials"):
        await Aarq(server.url, nkey_seed=stranger, connect_timeout=1).connect()
    with pytest.raises(ConfigError, match="does not exist"):
        await Aarq(server.url, nkey_seed=tmp_path / "missing.nk").connect()


async def test_creds_file_with_operator_jwts(
    configured_server: ServerFactory, tmp_path: Path
) -> None:
    operator = make_operator()
    server = configured_server(operator.config)
    creds = operator.creds(tmp_path / "app.creds")
    await run_one_job(Aarq(server.url, prefix="jwt", credentials=str(creds)))
    other = make_operator().creds(tmp_path / "other.creds")
    with pytest.raises(BrokerUnavailableError, match="refused the credentials"):
        await Aarq(server.url, credentials=str(other), connect_timeout=1).connect()


def test_cli_authenticates_every_way(configured_server: ServerFactory, tmp_path: Path) -> None:
    user = new_nkey(nkeys.PREFIX_BYTE_USER)
    seed = tmp_path / "user.nk"
    seed.write_bytes(user.seed)
    server = configured_server(
        "authorization { users: [\n"
        f'  {{ user: app, password: "{PASSWORD}" }}\n  {{ nkey: {user.public} }}\n] }}'
    )
    ok = run_cli("queues", "-s", server.url, "--user", "app", "--password", PASSWORD)
    assert ok.returncode == 0, ok.stderr
    ok = run_cli("queues", "-s", server.url, "--nkey", str(seed))
    assert ok.returncode == 0, ok.stderr
    env = cli_env(NATS_URL=server.url, NATS_USER="app", NATS_PASSWORD="not-" + PASSWORD)
    refused = run_cli("queues", env=env)
    assert refused.returncode == 1
    assert "refused the credentials" in refused.stderr
    assert PASSWORD not in refused.stderr + refused.stdout

    operator = make_operator()
    jwt_server = configured_server(operator.config)
    creds = operator.creds(tmp_path / "cli.creds")
    ok = run_cli("queues", "-s", jwt_server.url, "--creds", str(creds))
    assert ok.returncode == 0, ok.stderr


def test_cli_token(configured_server: ServerFactory) -> None:
    server = configured_server(f'authorization {{ token: "{TOKEN}" }}')
    ok = run_cli("queues", env=cli_env(NATS_URL=server.url, NATS_TOKEN=TOKEN))
    assert ok.returncode == 0, ok.stderr
