"""`inkling serve --engine-url` against a real llama.cpp `llama-server` with Inkling's tuned model
and its LoRA file: inline and block completions over LSP as in-process, cancellation, and the
server killed in the middle of a request (the language server stays up, answers empty, says so)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from export.build import BuildResult
from export.llama_server import BUILD_STEP, cached_llama_server, server_command
from lsp_server.bench.http_load import free_port
from lsp_server.pipeline import CompletionRequest, Pipeline
from lsp_server.settings import Settings
from tests.lsp.helpers import (
    ROOT,
    SERVER,
    UNHURRIED,
    cancel_mid_generation,
    inline,
    open_document,
    position_after,
    wait_for_model,
)
from tests.requirements import require

pytestmark = [pytest.mark.model, pytest.mark.slow]

DEMO = (ROOT / "examples" / "demo.py").read_text()
URI = "file:///work/demo.py"
BLOCK = "def mean(values):\n    "
BLOCK_URI = "file:///work/stats.py"


@dataclass
class LlamaServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _binary() -> Path:
    binary = cached_llama_server()
    require(binary is not None, "llama.cpp's llama-server", f"`.venv/bin/{BUILD_STEP}`")
    assert binary is not None
    return binary


def start_llama_server(model: Path, log: Path) -> LlamaServer:
    port = free_port()
    command = server_command(_binary(), model, port=port, threads=2, context=4096, slots=1)
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama-server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return LlamaServer(url, process, log)
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"llama-server did not become healthy:\n{log.read_text()[-3000:]}")


def stop(server: LlamaServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def llama_server(
    built_default: BuildResult, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    assert built_default.lora is not None  # the tuned model applies its LoRA file: --lora
    server = start_llama_server(built_default.path, tmp_path_factory.mktemp("llama") / "server.log")
    yield server
    stop(server)


async def start_client(url: str, model: Path, env: dict[str, str] | None = None) -> LanguageClient:
    command = [*SERVER, "--engine-url", url, "--model-path", str(model)]
    client = await ClientServerConfig(server_command=command, server_env=env).start()
    assert isinstance(client, LanguageClient)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), initialization_options=UNHURRIED
        )
    )
    return client


@pytest_asyncio.fixture
async def client(llama_server: LlamaServer, built_default: BuildResult) -> AsyncIterator[LanguageClient]:
    client = await start_client(llama_server.url, built_default.path)
    yield client
    await client.shutdown_session()
    await client.stop()


def in_process(model: Path, text: str, offset: int) -> str:
    """The same request through the in-process engine."""
    from lsp_server.loading import load_engine

    settings = Settings(
        model_path=str(model), threads=2, cold_start_tokens=0, time_budget_inline_ms=30000,
        time_budget_block_ms=60000,
    )  # fmt: skip
    engine = load_engine(settings, quiet=True)
    try:
        return Pipeline(engine).complete(CompletionRequest(text, offset, "python"), settings).text
    finally:
        engine.close()


async def test_inline_and_block_completions_match_the_in_process_engine(
    client: LanguageClient, built_default: BuildResult
) -> None:
    status = await wait_for_model(client)
    assert status["state"] == "ready", status
    assert status["model"].startswith("http://127.0.0.1:")
    assert status["template"] == "inkling"  # detected from the local copy of the engine's GGUF
    open_document(client, URI, DEMO)
    position = position_after(DEMO, "    sy = ")
    result = await inline(client, URI, position)
    assert result is not None and len(result.items) == 1
    text = result.items[0].insert_text
    assert text and "\n" not in text
    offset = DEMO.index("    sy = ") + len("    sy = ")
    assert text == in_process(built_default.path, DEMO, offset)

    block_text = BLOCK + "\n\nprint(mean([1, 2, 3]))\n"
    open_document(client, BLOCK_URI, block_text)
    block = await inline(client, BLOCK_URI, position_after(block_text, BLOCK))
    assert block is not None and block.items and block.items[0].insert_text.strip(), block
    assert block.items[0].insert_text == in_process(built_default.path, block_text, len(BLOCK))


async def test_cancelled_request_and_server_keeps_serving(client: LanguageClient) -> None:
    await wait_for_model(client)
    open_document(client, URI, DEMO)
    position = position_after(DEMO, "    sy = ")
    await cancel_mid_generation(client, URI, position)
    result = await inline(client, URI, position)
    assert result is not None and result.items and result.items[0].insert_text


async def test_the_engine_killed_mid_request(built_default: BuildResult, tmp_path: Path) -> None:
    server = start_llama_server(built_default.path, tmp_path / "server.log")
    client = await start_client(server.url, built_default.path)
    try:
        assert (await wait_for_model(client))["state"] == "ready"
        # A long block: generation takes seconds, so the kill lands in the middle of it.
        text = "class Matrix:\n    " + "\n" * 3
        open_document(client, BLOCK_URI, text)
        position = types.Position(line=1, character=4)
        pending = asyncio.ensure_future(inline(client, BLOCK_URI, position))
        assert await _processing(server), "the request never reached llama-server"
        await asyncio.sleep(0.1)
        server.process.kill()
        started = time.monotonic()
        result = await asyncio.wait_for(pending, timeout=20)
        assert time.monotonic() - started < 10  # no hang
        assert result is None or not result.items
        shown = await _messages(client, "the engine at")
        assert len(shown) == 1, shown  # one clear message
        # Still up: the next request is answered (empty: nothing listens any more), quickly.
        started = time.monotonic()
        other = "file:///work/other.py"
        again = await asyncio.wait_for(inline(client, other, _open(client, other)), 20)
        assert again is None or list(again.items) == []
        assert time.monotonic() - started < 10
        assert any("refused the connection" in m for m in await _messages(client, "refused"))
        assert (await wait_for_model(client))["state"] == "ready"
    finally:
        stop(server)
        await client.shutdown_session()
        await client.stop()


async def _processing(server: LlamaServer, timeout: float = 30.0) -> bool:
    """Wait until llama-server works on a request (its /slots say so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{server.url}/slots", timeout=2) as response:
                if any(slot.get("is_processing") for slot in json.load(response)):
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            pass
        await asyncio.sleep(0.02)
    return False


def _open(client: LanguageClient, uri: str) -> types.Position:
    text = "import os\n\nvalue = os.path.join(\n"
    open_document(client, uri, text)
    return position_after(text, "value = ")


async def _messages(client: LanguageClient, text: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m.message for m in client.messages if text in m.message]
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_the_servers_tokenizer_without_a_local_file(llama_server: LlamaServer, tmp_path: Path) -> None:
    """No model file here (an empty cache, no modelPath): tokens come from /tokenize."""
    env = {**os.environ, "INKLING_CACHE": str(tmp_path), "INKLING_MODEL": ""}
    command = [*SERVER, "--engine-url", llama_server.url]
    client = await ClientServerConfig(server_command=command, server_env=env).start()
    assert isinstance(client, LanguageClient)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), initialization_options=UNHURRIED
        )
    )
    try:
        status = await wait_for_model(client)
        assert status["state"] == "ready", status
        open_document(client, URI, DEMO)
        result = await inline(client, URI, position_after(DEMO, "    sy = "))
        assert result is not None and result.items and result.items[0].insert_text
    finally:
        await client.shutdown_session()
        await client.stop()
