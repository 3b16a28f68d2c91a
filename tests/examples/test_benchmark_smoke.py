"""The benchmark keeps running: a tiny run of the ceiling and aioq (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--systems", "ceiling,aioq"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "(b) no-op throughput" in result.stdout
