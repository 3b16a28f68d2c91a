"""Project-level checks: public API, lint, types, and README/CI agreement."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import aioq

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_all_lists_exactly_the_public_names() -> None:
    public = sorted(
        (name for name in vars(aioq) if not name.startswith("_") or name == "__version__"),
        key=str.casefold,
    )
    # Submodules are attributes of the package too; only re-exported objects are API.
    public = [n for n in public if not isinstance(getattr(aioq, n), type(aioq)) and n != "logging"]
    assert sorted(aioq.__all__, key=str.casefold) == public
    for name in ("Aarq", "Worker", "Job", "Retry", "AioqError", "Context"):
        assert name in aioq.__all__


def test_error_classes_share_one_root() -> None:
    errors = [getattr(aioq, n) for n in aioq.__all__ if n.endswith("Error")]
    assert errors
    assert all(issubclass(e, aioq.AioqError) for e in errors)


def test_ruff_is_clean() -> None:
    for args in (
        ["check", "aioq", "tests", "examples", "benchmarks"],
        ["format", "--check", "aioq"],
    ):
        result = subprocess.run(
            [str(BIN / "ruff"), *args], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    commands = [
        line for block in blocks[:2] for line in block.splitlines() if not line.startswith("#")
    ]
    setup, test = commands[0], commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci
    assert "pip install -e '.[dev]'" in setup
    assert "-e '.[dev]'" in "\n".join(ci)
    # A clean venv with the newest allowed versions, as a user's fresh install resolves them.
    assert "python3 -m venv --clear .venv" in ci
    assert any("--upgrade-strategy eager" in line for line in ci)


def test_every_install_line_names_the_distribution() -> None:
    # The name `aioq` on the package index belongs to another project.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^name = "aioq-nats"$', pyproject, flags=re.M)
    texts = [ROOT / "README.md", ROOT / "pyproject.toml", *ROOT.glob("docs/*.md")]
    texts += [*ROOT.glob("aioq/**/*.py"), *ROOT.glob("examples/*.py")]
    for path in texts:
        text = path.read_text()
        assert "aioq[" not in text, f"{path}: install 'aioq-nats[...]', not 'aioq[...]'"
        for line in re.findall(r"pip install [^\n`#]*", text):
            names = line.replace("'", " ")
            assert not re.search(r"\baioq\b(?!-nats)(?![.\w/])", names), f"{path}: {line}"
