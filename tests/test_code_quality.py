"""ruff and mypy stay clean on the packages: checked with the tests, not by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.requirements import has_train_extra, require_train_extra

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["lsp_server", "training", "export"]
NO_TORCH = 'Cannot find implementation or library stub for module named "torch"'


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], check=False, cwd=ROOT, capture_output=True, text=True
    )


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", *PACKAGES, "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied() -> None:
    result = run("ruff", "format", "--check", *PACKAGES, "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_the_server_and_export() -> None:
    """What the README's install can check. Without the train extra mypy knows no torch, which
    parts of export import: those imports are reported (and allowed), and torch is read as Any."""
    result = run("mypy", "-p", "lsp_server", "-p", "export")
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    unknown_torch = [line for line in errors if NO_TORCH in line and not has_train_extra()]
    assert errors == unknown_torch, result.stdout + result.stderr
    assert result.returncode == (1 if errors else 0), result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    """Every package, as pyproject.toml configures it: training needs the train extra's libraries."""
    require_train_extra()
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
