"""`inkling serve --http` started by an editor: LSP on stdio and HTTP in one process, one
model in memory and one scheduler; HTTP alone when stdin is no editor's."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lsp_server.bench.http_load import free_port, wait_healthy
from lsp_server.http.usage import FILE_NAME, read_usage
from lsp_server.lsp_client import SERVE_COMMAND, InklingClient

pytestmark = [pytest.mark.model, pytest.mark.slow]

SOURCE = "def area(width, height):\n    return \n"
UNHURRIED = {"timeBudgetInlineMs": 60_000, "timeBudgetBlockMs": 60_000}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _infill(url: str, prefix: str, suffix: str = "\n") -> dict[str, Any]:
    """llama.vim's request shape."""
    body = {"input_prefix": prefix, "input_suffix": suffix, "input_extra": [], "n_predict": 32}
    request = urllib.request.Request(f"{url}/infill", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


async def test_one_process_answers_lsp_and_http_with_one_model(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = tmp_path / "state"
    log_path = tmp_path / "server.log"
    command = [*SERVE_COMMAND, "--http", f"127.0.0.1:{port}", "--threads", "2"]
    with log_path.open("w", encoding="utf-8") as log:
        client = InklingClient(command, env={**os.environ, "INKLING_STATE": str(state)}, stderr=log)
        await client.start(UNHURRIED)
        try:
            status = await client.wait_ready(timeout=120)
            assert status["state"] == "ready", status
            code, _ = await asyncio.to_thread(_get, f"{url}/health")
            assert code == 200
            uri = (tmp_path / "area.py").as_uri()
            client.open(uri, "python", SOURCE)
            # The editor and an HTTP client ask at the same moment: both are answered (each is
            # a client of its own in the scheduler; neither supersedes the other).
            lsp_answer, http_answer = await asyncio.gather(
                client.inline(uri, 1, len("    return ")),
                asyncio.to_thread(_infill, url, "def mean(values):\n    total = sum(values)\n    return "),
            )
            assert "width" in lsp_answer, lsp_answer
            assert http_answer["content"].strip(), http_answer
            status = await client.status()
            _, metrics = await asyncio.to_thread(_get, f"{url}/metrics")
            assert status["modelLoads"] == 1, status  # the LSP session's load joined HTTP's
            assert _metric(metrics, "inkling_model_loads_total") == 1
        finally:
            assert await client.stop() == 0
    text = log_path.read_text(encoding="utf-8")
    assert "beside LSP on stdio" in text and "loading again" not in text, text
    with pytest.raises(OSError):  # the editor left: HTTP went with it
        urllib.request.urlopen(f"{url}/health", timeout=2)
    (anonymous,) = read_usage(state / FILE_NAME)  # written on the way out
    assert anonymous.counts.requests >= 1 and anonymous.counts.shown >= 1


async def test_a_taken_port_leaves_the_editors_completions_alone(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [*SERVE_COMMAND, "--http", f"127.0.0.1:{port}", "--threads", "2"]
        client = InklingClient(command, env=dict(os.environ))
        await client.start(UNHURRIED)
        try:
            assert (await client.wait_ready(timeout=120))["state"] == "ready"
            uri = (tmp_path / "area.py").as_uri()
            client.open(uri, "python", SOURCE)
            assert "width" in await client.inline(uri, 1, len("    return "))
        finally:
            assert await client.stop() == 0
    messages = [
        str(params.message) for method, params in client.notifications if method == "window/showMessage"
    ]
    assert any("HTTP not served" in message for message in messages), messages


def test_with_stdin_from_dev_null_it_serves_http_alone(tmp_path: Path) -> None:
    """A team server under systemd or `docker run` (no -i): stdin is /dev/null."""
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "lsp_server", "serve", "--http", f"127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(port, server)
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "HTTP only (stdin is a device such as /dev/null)" in log_path.read_text()
