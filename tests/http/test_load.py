"""Eight users typing at once into one HTTP server: no errors, memory flat.

Latency is reported by `inkling bench-http` (a benchmark, not a test); here only
what must hold on any machine is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_eight_users_typing_at_once_get_answers_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    run = subprocess.run(
        [sys.executable, "-m", "lsp_server", "bench-http", "--users", "8", "--keys", "24", "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert report["all"]["errors"] == 0
    assert all(user["sent"] == 24 for user in report["per_user"])
    # Every user was served: each got at least its last key's answer (the one it waits for).
    assert all(user["after_last_key_ms"] is not None for user in report["per_user"]), report["per_user"]
    rss = report["rss_kib"]
    assert rss["after"] - rss["before"] < 64 * 1024, rss  # no growth with the requests
