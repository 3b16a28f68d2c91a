"""The scheduling and flow-control examples run (each starts its own nats-server)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aioq.embedded import server_version

from ..procs import ROOT, cli_env

pytestmark = pytest.mark.timeout(60)


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )


def test_cron_app_example() -> None:
    result = run_example("examples/cron_app.py", "--seconds", "4.5")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "heartbeat from every-2s: cron-fast-" in out
    assert out.count("reminder to ") == 4
    assert "reminder to boss@example.com" in out
    assert "worker stopped" in out


def test_flow_control_example() -> None:
    result = run_example("examples/flow_control.py")
    assert result.returncode == 0, result.stdout + result.stderr
    if server_version() >= (2, 11, 0):
        assert "paused at" in result.stdout
        assert "resumed at" in result.stdout
    else:
        assert "cannot pause: pausing a queue needs nats-server 2.11" in result.stdout
    assert "jobs started" in result.stdout
