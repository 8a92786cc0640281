"""`inkling serve` begins loading the model before the client connects; the client's
settings still decide which model and context it gets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsp_server.lsp_client import InklingClient

pytestmark = pytest.mark.model

SOURCE = "def area(width, height):\n    return \n"


async def _session(tmp_path: Path, options: dict[str, object]) -> tuple[dict[str, object], str, str]:
    """Start a server, wait for the model, complete once; the status, the answer, the log."""
    log_path = tmp_path / "server.log"
    with log_path.open("w", encoding="utf-8") as log:
        client = InklingClient(env=dict(os.environ), stderr=log)
        await client.start({"timeBudgetInlineMs": 60_000, **options})
        try:
            status = await client.wait_ready(timeout=120)
            uri = (tmp_path / "area.py").as_uri()
            client.open(uri, "python", SOURCE)
            answer = await client.inline(uri, 1, len("    return "))
        finally:
            assert await client.stop() == 0
    return status, answer, log_path.read_text(encoding="utf-8")


async def test_the_early_load_is_the_model_the_session_uses(tmp_path: Path) -> None:
    status, answer, log = await _session(tmp_path, {})
    assert status["state"] == "ready" and status["model"] == os.environ["INKLING_MODEL"], status
    assert "while the client connects" in log, log
    assert "loading again" not in log and log.count("model ready in") == 2, log  # engine + server line
    assert "width" in answer, answer


async def test_client_settings_that_differ_replace_the_early_load(tmp_path: Path) -> None:
    status, answer, log = await _session(tmp_path, {"contextSize": 1024})
    assert status["state"] == "ready", status
    assert "while the client connects" in log and "loading again" in log, log
    assert "width" in answer, answer
