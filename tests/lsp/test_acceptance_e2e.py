"""Accepts come back as workspace/executeCommand and are counted locally (real server and model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from lsp_server.acceptance import ACCEPT_COMMAND
from tests.lsp.helpers import ROOT, SERVER, inline, open_document, position_after, status, wait_for_model

pytestmark = pytest.mark.model

DEMO = (ROOT / "examples" / "demo.py").read_text()
URI = "file:///work/demo.py"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        client_info=types.ClientInfo(name="Acceptance Test", version="1.0"),
        # Generous budgets: the machine is shared, and this test is about counting, not speed.
        initialization_options={"timeBudgetInlineMs": 60000, "timeBudgetBlockMs": 60000},
    )
    lsp_client.init_result = await lsp_client.initialize_session(params)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_accepted_items_are_counted_and_stored(client: LanguageClient) -> None:
    commands = client.init_result.capabilities.execute_command_provider  # type: ignore[attr-defined]
    assert commands is not None and ACCEPT_COMMAND in commands.commands
    await wait_for_model(client)
    open_document(client, URI, DEMO)
    position = position_after(DEMO, "    sy = ")

    offered = []
    for _ in range(2):
        result = await inline(client, URI, position)
        assert result is not None and len(result.items) == 1
        offered.append(result.items[0].command)
    menu = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=URI), position=position)
    )
    assert menu is not None and menu.items[0].command is not None
    offered.append(menu.items[0].command)
    assert all(c is not None and c.command == ACCEPT_COMMAND for c in offered)
    ids = [c.arguments[0] for c in offered]
    assert len(set(ids)) == 3

    # The client runs the item's command on accept; a repeat is not counted twice.
    for command in (offered[0], offered[0], offered[2]):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
        )
    current = await status(client)
    acceptance = current["acceptance"]
    acceptance = acceptance if isinstance(acceptance, dict) else acceptance._asdict()
    assert acceptance["shown"] == 3 and acceptance["accepted"] == 2

    stored = Path(os.environ["INKLING_STATE"]) / "acceptance.json"
    record = json.loads(stored.read_text())  # accepts are written at once
    client_counts = record["byClient"]["Acceptance Test"]
    assert client_counts["accepted"] == 2 and client_counts["shown"] >= 3
    assert record["byKind"]["menu"]["accepted"] == 1

    shown = subprocess.run(
        [sys.executable, "-m", "lsp_server", "stats", "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(shown.stdout)["byClient"]["Acceptance Test"]["accepted"] == 2
