"""Settings from every client source, bad model files, encodings, TCP."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.lsp.helpers import SERVER, UNHURRIED, inline, open_document, position_after, status, wait_for_model

pytestmark = pytest.mark.model

CODE = "def area(width, height):\n    return \n"


async def start(
    client: LanguageClient, options: dict[str, object] | None = None, spec: str = "visual-studio-code"
):
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(spec), initialization_options={**UNHURRIED, **(options or {})}
        )
    )


async def messages_containing(client: LanguageClient, text: str, timeout: float = 10.0) -> list[str]:
    for _ in range(int(timeout / 0.05)):
        found = [m.message for m in client.messages if text in m.message]
        if found:
            return found
        await asyncio.sleep(0.05)
    return []


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def _truncated_default_model(size: int) -> bytes:
    from lsp_server.models import resolve_model

    with resolve_model().path.open("rb") as handle:
        return handle.read(size)


def _gguf_of_unknown_architecture() -> bytes:
    import tempfile

    import gguf
    import numpy as np

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frob.gguf"
        writer = gguf.GGUFWriter(str(path), arch="frobnicator")
        writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        (lambda: b"not a model at all", "not a GGUF file"),
        (lambda: b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64, "could not load"),
        (lambda: _truncated_default_model(2_000), "failed to read key-value pairs"),
        (lambda: _truncated_default_model(20_000_000), "not within the file bounds"),
        (_gguf_of_unknown_architecture, "unknown model architecture: 'frobnicator'"),
    ],
    ids=[
        "missing",
        "not-gguf",
        "corrupt",
        "truncated-header",
        "truncated-tensors",
        "unsupported-architecture",
    ],
)
async def test_bad_model_file_keeps_the_server_up(
    client: LanguageClient, tmp_path: Path, content: Callable[[], bytes] | None, expected: str
) -> None:
    model = tmp_path / "model.gguf"
    if content is not None:
        model.write_bytes(content())
    await start(client, {"modelPath": str(model)})
    current = await wait_for_model(client)
    assert current["state"] == "failed" and expected in current["error"]
    shown = await messages_containing(client, expected)
    assert len(shown) == 1, client.messages  # said once, clearly
    open_document(client, "file:///a.py", CODE)
    result = await inline(client, "file:///a.py", position_after(CODE, "return "))
    assert list(result.items) == []  # answered, empty


async def test_bad_setting_values_are_reported_and_defaulted(client: LanguageClient) -> None:
    await start(client, {"maxTokensInline": "lots", "frobnicate": True})
    assert await messages_containing(client, "maxTokensInline")
    assert await messages_containing(client, "frobnicate")
    assert (await wait_for_model(client))["state"] == "ready"


async def test_did_change_configuration_switches_languages_and_model(
    client: LanguageClient, tmp_path: Path
) -> None:
    await start(client)
    assert (await wait_for_model(client))["state"] == "ready"
    open_document(client, "file:///a.py", CODE)
    position = position_after(CODE, "return ")
    assert (await inline(client, "file:///a.py", position)).items

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"inkling": {"languages": {"python": False}}})
    )
    await asyncio.sleep(0.2)
    assert list((await inline(client, "file:///a.py", position)).items) == []

    # A new model path reloads the model; a bad one fails without killing the server.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"inkling": {"modelPath": str(tmp_path / "none.gguf")}})
    )
    for _ in range(100):
        if (await status(client))["state"] == "failed":
            break
        await asyncio.sleep(0.05)
    assert (await status(client))["state"] == "failed"


async def test_utf8_positions_when_the_client_offers_them(client: LanguageClient) -> None:
    await start(client, spec="neovim")
    assert client.capabilities is not None
    assert (await wait_for_model(client))["state"] == "ready"
    assert (await status(client))["encoding"] == "utf-8"
    text = 'label = "naïve 😀"\ntotal = len(label) + \n'
    open_document(client, "file:///u.py", text)
    line = text.split("\n")[1]
    character = len(line.encode("utf-8"))  # UTF-8 byte column at the end of line 2
    result = await inline(client, "file:///u.py", types.Position(line=1, character=character))
    assert result.items and result.items[0].range.start.character == character


def _non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one (a UDP "connect" only
    picks the route: nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_tcp_listens_on_loopback_only() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [*SERVER, "--tcp", "--port", str(port)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                import time

                time.sleep(0.1)
        else:
            pytest.fail("the TCP server did not start")
        outside = _non_loopback_address()
        if outside is not None:  # a server on 0.0.0.0 would answer there too
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=1).close()
        listening = subprocess.run(
            ["ss", "-ltnH", f"sport = :{port}"] if shutil.which("ss") else ["true"],
            capture_output=True,
            text=True,
            check=False,
        )
        # ss does not always see the socket in this sandbox; when it does: State, Recv-Q,
        # Send-Q, local address, peer address ("0.0.0.0:*" on every listener).
        local = [line.split()[3] for line in listening.stdout.splitlines() if line.strip()]
        assert local in ([], [f"127.0.0.1:{port}"]), listening.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_complete_command_prints_a_json_record() -> None:
    import json

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lsp_server",
            "complete",
            "examples/demo.py:23:10",
            "--json",
            "--time-budget-inline-ms",
            "30000",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    record = json.loads(result.stdout)
    assert record["mode"] == "inline" and "p.y" in record["completion"]
    assert record["completion_ms"] > 0 and record["template"] == "prefix-only"


def test_complete_command_explains_a_skip_and_succeeds() -> None:
    # Mid-word inside the module docstring: a place where Inkling offers nothing.
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server", "complete", "examples/demo.py:1:10"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert "[skip: inside " in result.stderr and "(no completion)" in result.stderr
    assert "prefix-only prompt" in result.stderr and result.stdout == ""


def test_complete_command_reports_bad_locations() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server", "complete", "examples/demo.py:nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "FILE:LINE:COL" in result.stderr


def test_doctor_reports_everything_and_no_network() -> None:
    import json

    result = subprocess.run(
        [sys.executable, "-m", "lsp_server", "doctor", "--json"], capture_output=True, text=True, check=False
    )
    report = json.loads(result.stdout)
    names = {check["name"]: check for check in report["checks"]}
    assert result.returncode == 0, report
    for name in (
        "threads",
        "grammars",
        "model file",
        "model load",
        "prompt template",
        "speed",
        "completion",
        "offline",
    ):
        assert names[name]["ok"], names[name]
    assert report["info"]["speed"]["generate_tokens_per_s"] > 1
    from lsp_server.llama_model import LORA_KEY, LlamaModel
    from lsp_server.models import resolve_model

    model = LlamaModel(resolve_model().path, n_ctx=64, n_threads=1, n_batch=8, vocab_only=True)
    lora = model.metadata(LORA_KEY)
    model.close()
    if lora:  # the tuned default applies its LoRA file on load, and says so
        assert f"LoRA {lora}" in names["model load"]["detail"], names["model load"]


async def test_workspace_is_indexed_for_project_context(client: LanguageClient, tmp_path: Path) -> None:
    (tmp_path / "billing.py").write_text("def compute_total(invoice, tax_rate=0.2):\n    return 1\n")
    (tmp_path / "report.py").write_text("from billing import compute_total\n")
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=tmp_path.as_uri(),
            initialization_options=UNHURRIED,
        )
    )
    await wait_for_model(client)
    text = "from billing import compute_total\n\ntotal = \n"
    open_document(client, (tmp_path / "report.py").as_uri(), text)
    for _ in range(100):
        if (await status(client))["index"]["definitions"] >= 1:
            break
        await asyncio.sleep(0.05)
    assert (await status(client))["index"]["files"] == 2
    result = await inline(client, (tmp_path / "report.py").as_uri(), position_after(text, "total = "))
    assert result.items  # the prompt with project context still completes
