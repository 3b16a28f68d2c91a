"""A user's project (tests/sample_project) passes using only the plugin's public fixtures.

It runs in a pytest of its own, from its own directory and ini file, as a user would run it:
no conftest of this repository, and the plugin loaded through its entry point alone.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ..procs import ROOT, cli_env

pytestmark = pytest.mark.timeout(90)

PROJECT = ROOT / "tests" / "sample_project"


def test_sample_project_passes_with_the_plugin_fixtures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v"],
        cwd=PROJECT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "7 passed" in output, output
    # No conftest: the fixtures come from the plugin, loaded through its entry point.
    assert not list(PROJECT.rglob("conftest.py"))
    assert "test_a_deployment_stop_finishes_running_jobs PASSED" in output, output


def test_sample_project_is_not_collected_by_the_main_run() -> None:
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests"],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout[-2000:]
    assert "sample_project/" not in collected.stdout, collected.stdout[-2000:]
