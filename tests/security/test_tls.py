"""TLS: a CA file, client certificates (mutual TLS) and a ready SSLContext, from Python and CLI."""

from __future__ import annotations

import ssl

import pytest

from aioq import Aarq
from aioq.errors import BrokerUnavailableError, ConfigError

from ..procs import cli_env, run_cli
from .conftest import ServerFactory
from .pki import Pki
from .roundtrip import run_one_job


def _tls_block(pki: Pki, *, verify: bool) -> str:
    block = f'cert_file: "{pki.server_cert}"\n  key_file: "{pki.server_key}"\n'
    if verify:
        block += f'  ca_file: "{pki.ca}"\n  verify: true\n'
    return f"tls {{\n  {block}  timeout: 2\n}}"


def _tls_url(url: str) -> str:
    return "tls://" + url.split("://", 1)[1]


async def test_tls_url_with_ca_file_runs_a_job(configured_server: ServerFactory, pki: Pki) -> None:
    server = configured_server(_tls_block(pki, verify=False))
    await run_one_job(Aarq(_tls_url(server.url), prefix="tls", tls_ca=pki.ca))


async def test_a_ready_ssl_context_works_too(configured_server: ServerFactory, pki: Pki) -> None:
    server = configured_server(_tls_block(pki, verify=False))
    context = ssl.create_default_context(cafile=str(pki.ca))
    await run_one_job(Aarq(_tls_url(server.url), prefix="tls", tls=context))


async def test_a_server_signed_by_another_ca_is_refused(
    configured_server: ServerFactory, pki: Pki
) -> None:
    server = configured_server(_tls_block(pki, verify=False))
    app = Aarq(_tls_url(server.url), tls_ca=pki.other_ca, connect_timeout=1)
    with pytest.raises(BrokerUnavailableError, match="certificate"):
        await app.connect()


async def test_mutual_tls(configured_server: ServerFactory, pki: Pki) -> None:
    server = configured_server(_tls_block(pki, verify=True))
    await run_one_job(
        Aarq(
            _tls_url(server.url),
            prefix="mtls",
            tls_ca=pki.ca,
            tls_cert=pki.client_cert,
            tls_key=pki.client_key,
        )
    )
    # Without a client certificate the server closes the connection.
    app = Aarq(_tls_url(server.url), tls_ca=pki.ca, connect_timeout=1)
    with pytest.raises(BrokerUnavailableError):
        await app.connect()


async def test_tls_files_are_checked(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="go together"):
        await Aarq(tls_ca=pki.ca, tls_cert=pki.client_cert).connect()
    with pytest.raises(ConfigError, match="does not exist"):
        await Aarq(tls_ca="/nonexistent/ca.pem").connect()
    with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
        await Aarq(tls_ca=pki.ca, tls_cert=pki.client_cert, tls_key=pki.server_key).connect()
    with pytest.raises(ConfigError, match="not both"):
        await Aarq(tls=ssl.create_default_context(), tls_ca=pki.ca).connect()


def test_cli_takes_tls_files(configured_server: ServerFactory, pki: Pki) -> None:
    server = configured_server(_tls_block(pki, verify=True))
    args = ["-s", _tls_url(server.url), "--tls-ca", str(pki.ca)]
    mtls = [*args, "--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key)]
    done = run_cli("queues", *mtls)
    assert done.returncode == 0, done.stderr
    done = run_cli("queues", *args)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach NATS")
    # The same from the environment, as the nats CLI names it.
    env = cli_env(
        NATS_URL=_tls_url(server.url),
        NATS_CA=str(pki.ca),
        NATS_CERT=str(pki.client_cert),
        NATS_KEY=str(pki.client_key),
    )
    done = run_cli("queues", env=env)
    assert done.returncode == 0, done.stderr
