"""deploy/cluster/*.conf are valid nats-server configurations (certificate files aside)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from aioq.embedded import find_nats_server

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "cluster"
SECRETS = ("ROUTE", "LEAF", "SYS", "WORKER", "PRODUCER", "ADMIN")


@pytest.mark.parametrize("name", ["n1.conf", "n2.conf", "n3.conf", "leaf.conf"])
def test_config_is_accepted_by_nats_server(name: str, tmp_path: Path) -> None:
    text = (DEPLOY / name).read_text()
    assert "sync_interval: always" in text or name == "leaf.conf"
    # The TLS blocks name certificate files that exist only on real servers.
    checked = tmp_path / name
    checked.write_text(re.sub(r"\n\s*tls \{[^}]*\}", "", text).replace("tls://", "nats://"))
    env = {**os.environ, **{f"{s}_PASSWORD": "placeholder" for s in SECRETS}}
    done = subprocess.run(
        [find_nats_server(), "-t", "-c", str(checked)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert "is valid" in done.stdout + done.stderr, done.stdout + done.stderr
