"""With recordFeedback, the real server (over stdio, real model) records each offered completion
and what became of it: accepted, rejected, partly typed, or left when the document closed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from lsp_server.feedback import FILE_NAME, FeedbackStore
from tests.lsp.helpers import (
    ROOT,
    SERVER,
    UNHURRIED,
    inline,
    open_document,
    position_after,
    status,
    wait_for_model,
)
from tests.requirements import require_train_extra

pytestmark = pytest.mark.model

DEMO = (ROOT / "examples" / "demo.py").read_text()
MARKER = "    sy = "
STATE = Path(os.environ["INKLING_STATE"]) / "feedback-e2e"
"""Under the test run's state directory (removed when the run ends)."""


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=SERVER, server_env={**os.environ, "INKLING_STATE": str(STATE)})
)
async def client(lsp_client: LanguageClient):
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        client_info=types.ClientInfo(name="Feedback Test", version="1.0"),
        initialization_options={**UNHURRIED, "recordFeedback": True, "maxTokensInline": 24},
    )
    await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


async def offer(client: LanguageClient, uri: str) -> tuple[str, types.Command, types.Position]:
    """Open demo.py as `uri` and get the completion after `sy = `."""
    assert (await wait_for_model(client))["state"] == "ready"
    open_document(client, uri, DEMO)
    position = position_after(DEMO, MARKER)
    result = await inline(client, uri, position)
    assert result is not None and len(result.items) == 1
    item = result.items[0]
    assert item.command is not None and len(item.insert_text) >= 2, item.insert_text
    return str(item.insert_text), item.command, position


def type_text(client: LanguageClient, uri: str, version: int, at: types.Position, text: str) -> int:
    """Insert `text` at `at` one character at a time, as typing does; returns the last version."""
    line, character = at.line, at.character
    for char in text:
        version += 1
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=line, character=character),
                            end=types.Position(line=line, character=character),
                        ),
                        text=char,
                    )
                ],
            )
        )
        line, character = (line + 1, 0) if char == "\n" else (line, character + 1)
    return version


async def stored(item: str, timeout: float = 30.0) -> dict[str, Any]:
    """The record of `item`, once the server's writer thread has written it."""
    deadline = time.monotonic() + timeout
    while True:
        if (STATE / FILE_NAME).is_file():
            store = FeedbackStore(STATE / FILE_NAME)
            try:
                found = [r for r in store.records() if r["item"] == item]
            finally:
                store.close()
            if found:
                return found[0]
        assert time.monotonic() < deadline, f"no record of {item}"
        await asyncio.sleep(0.1)


def other_than(text: str) -> str:
    return next(c for c in "~@#zq" if c != text[:1])


async def test_accepted_with_the_items_command(client: LanguageClient) -> None:
    completion, command, _ = await offer(client, "file:///work/accept.py")
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
    )
    record = await stored(command.arguments[0])
    assert (record["outcome"], record["how"]) == ("accepted", "command")
    assert record["completion"] == record["typed"] == completion
    assert record["prefix"].endswith(MARKER) and record["suffix"].startswith("\n    return Point(")
    assert (
        record["language"] == "python"
        and record["file"] == "accept.py"
        and record["client"] == "Feedback Test"
    )
    assert record["model"] == Path(os.environ["INKLING_MODEL"]).name and len(record["model_hash"]) == 16
    assert record["settings"]["max_tokens_inline"] == 24 and record["mode"] == "inline"
    feedback = (await status(client))["feedback"]
    assert feedback["recording"] and feedback["pending"] == 0


async def test_rejected_when_other_text_is_typed(client: LanguageClient) -> None:
    uri = "file:///work/reject.py"
    completion, command, position = await offer(client, uri)
    typed = other_than(completion) + "0.0"
    type_text(client, uri, 1, position, typed + "\n")
    record = await stored(command.arguments[0])
    assert (record["outcome"], record["reason"], record["matched_chars"]) == ("rejected", "diverged", 0)
    assert record["typed"] == typed and record["typed_complete"]


async def test_partial_when_a_prefix_was_typed(client: LanguageClient) -> None:
    uri = "file:///work/partial.py"
    completion, command, position = await offer(client, uri)
    typed = completion[0] + other_than(completion[1:]) + "1"
    type_text(client, uri, 1, position, typed + "\n")
    record = await stored(command.arguments[0])
    assert (record["outcome"], record["matched_chars"]) == ("partial", 1)
    assert record["typed"] == typed


async def test_closing_the_document_settles_the_offer(client: LanguageClient) -> None:
    uri = "file:///work/closed.py"
    _, command, _ = await offer(client, uri)
    assert (await status(client))["feedback"]["pending"] == 1
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    record = await stored(command.arguments[0])
    assert (record["outcome"], record["reason"], record["typed"]) == ("rejected", "closed", "")


async def test_export_and_pairs_from_a_recorded_session(client: LanguageClient, tmp_path: Path) -> None:
    """A short session (one accept, one rejection with what was typed instead), exported as
    JSON lines and turned into SFT examples and a preference pair by `inkling train pairs`."""
    require_train_extra()
    state = {"INKLING_STATE": str(STATE)}
    completion, command, _ = await offer(client, "file:///work/session-a.py")
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
    )
    client.text_document_did_close(  # else its copy of the text is project context for the next
        types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri="file:///work/session-a.py")
        )
    )
    uri = "file:///work/session-b.py"
    rejected, command_b, position = await offer(client, uri)
    typed = other_than(rejected) + "0.0"
    type_text(client, uri, 1, position, typed + "\n")
    await stored(command_b.arguments[0])

    exported = tmp_path / "feedback.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "lsp_server", "feedback", "export", str(exported)],
        env={**os.environ, **state},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "records written" in run.stdout
    records = {r["item"]: r for r in map(json.loads, exported.read_text().splitlines())}
    assert records[command.arguments[0]]["outcome"] == "accepted"
    assert records[command_b.arguments[0]]["outcome"] == "rejected"
    assert {"outcome", "completion", "prefix", "suffix", "typed", "language"} <= set(
        records[command.arguments[0]]
    )

    out = tmp_path / "pairs"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "lsp_server",
            "train",
            "pairs",
            "--from-feedback",
            str(exported),
            "--set",
            f"output={out}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "pairs_report.json").read_text())
    assert report["sft_examples"]["train"] + report["sft_examples"]["validation"] >= 1
    assert report["pairs"] >= 1

    import datasets

    pairs = datasets.load_from_disk(str(out / "pairs"))
    # The space the prefix ends with moves into the middle, as in every training example.
    pair = next(p for p in pairs if p["rejected"] == " " + rejected)
    assert pair["chosen"] == " " + typed and pair["prefix"].endswith(MARKER.rstrip())
    examples = datasets.load_from_disk(str(out / "dataset"))
    middles = [row["middle"] for split in examples.values() for row in split]
    assert " " + completion in middles
