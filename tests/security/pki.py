"""Test-time key material: a CA with server and client certificates, NKeys, JWTs and .creds."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate for 127.0.0.1, a client one, and a stranger CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    usage: ExtendedKeyUsageOID | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), True
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)  # type: ignore[list-item]
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                False,
            )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(directory: Path) -> Pki:
    """Write a fresh CA and certificates into `directory`."""
    ca_key = _key()
    ca = _cert("aioq test CA", ca_key, None)
    other_key = _key()
    other = _cert("some other CA", other_key, None)
    server_key, client_key = _key(), _key()
    server = _cert("127.0.0.1", server_key, (ca, ca_key), ExtendedKeyUsageOID.SERVER_AUTH)
    client = _cert("aioq-client", client_key, (ca, ca_key), ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(
        ca=_write_cert(ca, directory / "ca.pem"),
        server_cert=_write_cert(server, directory / "server-cert.pem"),
        server_key=_write_key(server_key, directory / "server-key.pem"),
        client_cert=_write_cert(client, directory / "client-cert.pem"),
        client_key=_write_key(client_key, directory / "client-key.pem"),
        other_ca=_write_cert(other, directory / "other-ca.pem"),
    )


# -- NKeys and JWTs -------------------------------------------------------------------------


@dataclass(frozen=True)
class NKey:
    """An NKey pair: its seed (``S...``) and public key (``U...``, ``A...``, ``O...``)."""

    seed: bytes
    public: str

    def sign(self, data: bytes) -> bytes:
        return bytes(nkeys.from_seed(bytearray(self.seed)).sign(data))


def new_nkey(prefix: int) -> NKey:
    """A fresh key pair of the kind `prefix` (``nkeys.PREFIX_BYTE_USER`` ...)."""
    seed = bytes(nkeys.encode_seed(os.urandom(32), prefix))
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    return NKey(seed, public)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_jwt(issuer: NKey, subject: str, name: str, nats: dict[str, Any]) -> str:
    """A NATS JWT (v2) for `subject`, signed by `issuer`."""
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": issuer.public,
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    digest = hashlib.sha512(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest[:32]).decode().rstrip("=")
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = _b64(issuer.sign(f"{header}.{payload}".encode()))
    return f"{header}.{payload}.{signature}"


_UNLIMITED = {
    "subs": -1,
    "data": -1,
    "payload": -1,
    "imports": -1,
    "exports": -1,
    "wildcards": True,
    "conn": -1,
    "leaf": -1,
    "mem_storage": -1,
    "disk_storage": -1,
    "streams": -1,
    "consumer": -1,
}


@dataclass(frozen=True)
class Operator:
    """An operator with one JetStream-enabled account and a system account, as server config."""

    config: str
    account: NKey

    def creds(self, path: Path, user_name: str = "app") -> Path:
        """Write a .creds file for a new user of the account."""
        user = new_nkey(nkeys.PREFIX_BYTE_USER)
        jwt = encode_jwt(
            self.account,
            user.public,
            user_name,
            {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user"},
        )
        path.write_text(
            f"-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{user.seed.decode()}\n"
            "------END USER NKEY SEED------\n"
        )
        return path


def make_operator() -> Operator:
    """Decentralized (JWT) auth: an operator, an app account with JetStream, a system one."""
    operator = new_nkey(nkeys.PREFIX_BYTE_OPERATOR)
    account = new_nkey(nkeys.PREFIX_BYTE_ACCOUNT)
    system = new_nkey(nkeys.PREFIX_BYTE_ACCOUNT)
    operator_jwt = encode_jwt(
        operator, operator.public, "aioq-op", {"type": "operator", "system_account": system.public}
    )
    account_jwt = encode_jwt(
        operator, account.public, "app", {"type": "account", "limits": _UNLIMITED}
    )
    system_jwt = encode_jwt(operator, system.public, "SYS", {"type": "account", "limits": {}})
    config = (
        f"operator: {operator_jwt}\n"
        f"system_account: {system.public}\n"
        "resolver: MEMORY\n"
        f"resolver_preload: {{\n  {account.public}: {account_jwt}\n"
        f"  {system.public}: {system_jwt}\n}}\n"
    )
    return Operator(config, account)
