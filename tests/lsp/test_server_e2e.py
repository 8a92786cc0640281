"""The real server over stdio, with the real default model loaded by llama.cpp."""

from __future__ import annotations

import asyncio

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.lsp.helpers import (
    ROOT,
    SERVER,
    UNHURRIED,
    cancel_mid_generation,
    inline,
    open_document,
    position_after,
    status,
    wait_for_model,
)

pytestmark = pytest.mark.model

DEMO = (ROOT / "examples" / "demo.py").read_text()
URI = "file:///work/demo.py"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    result = await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), initialization_options=UNHURRIED
        )
    )
    lsp_client.init_result = result  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_capabilities_and_background_load_with_progress(client: LanguageClient) -> None:
    capabilities = client.init_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.inline_completion_provider is not None
    assert capabilities.completion_provider is not None
    sync = capabilities.text_document_sync
    assert sync.change == types.TextDocumentSyncKind.Incremental
    assert capabilities.position_encoding == types.PositionEncodingKind.Utf16

    status = await wait_for_model(client)
    assert status["state"] == "ready", status
    assert status["template"] == "prefix-only"  # Gemma 3 270M has no FIM tokens
    for _ in range(50):  # the end notification follows the ready state closely
        kinds = [type(v).__name__ for values in client.progress_reports.values() for v in values]
        if "WorkDoneProgressEnd" in kinds:
            break
        await asyncio.sleep(0.05)
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd", kinds


async def test_inline_completion_fits_the_code(client: LanguageClient) -> None:
    await wait_for_model(client)
    open_document(client, URI, DEMO)
    position = position_after(DEMO, "    sy = ")
    result = await inline(client, URI, position)
    assert result is not None and len(result.items) == 1
    item = result.items[0]
    assert "p.y" in item.insert_text, item.insert_text  # the y twin of the line above
    assert "\n" not in item.insert_text  # inline mode finishes the line only
    assert item.range.start == position and item.range.end == position


async def test_an_invoked_request_offers_distinct_suggestions_the_first_as_typing_gets_it(
    client: LanguageClient,
) -> None:
    await wait_for_model(client)
    open_document(client, URI, DEMO)
    position = position_after(DEMO, "    sy = ")
    typing = await inline(client, URI, position)
    assert typing is not None and len(typing.items) == 1  # while typing: no alternatives paid for
    # Closed and opened again: the completion cache forgets the answer, so the first item of
    # the invoked request is the model's own, not the cached one.
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=URI))
    )
    open_document(client, URI, DEMO)
    asked = await inline(client, URI, position, types.InlineCompletionTriggerKind.Invoked)
    assert asked is not None
    texts = [item.insert_text for item in asked.items]
    assert texts[0] == typing.items[0].insert_text, (texts, typing.items[0].insert_text)
    assert 2 <= len(texts) <= 3 and len(set(texts)) == len(texts), texts  # inlineSuggestions 3
    assert all("\n" not in text for text in texts)  # the same stop rules as the answer
    ids = [item.command.arguments[0] for item in asked.items]
    assert len(set(ids)) == len(ids)  # each item its own accept command
    assert all(item.range.start == position == item.range.end for item in asked.items)


async def test_completion_item_for_menu_clients(client: LanguageClient) -> None:
    await wait_for_model(client)
    text = DEMO.replace("    sy = \n", "    sy = su\n")
    open_document(client, URI, text)
    position = position_after(text, "    sy = su")
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=URI), position=position)
    )
    assert result is not None and len(result.items) == 1
    item = result.items[0]
    edit = item.text_edit
    assert isinstance(edit, types.TextEdit)
    # The edit replaces the word being typed ("su") so menu filtering keeps it.
    assert edit.range.start == types.Position(line=position.line, character=position.character - 2)
    assert edit.range.end == position
    assert edit.new_text.startswith("su") and len(edit.new_text) > 2
    assert item.filter_text is not None and item.filter_text.startswith("su")
    assert item.insert_text_mode == types.InsertTextMode.AsIs


async def test_incremental_edits_are_followed(client: LanguageClient) -> None:
    await wait_for_model(client)
    open_document(client, URI, "import os\n")
    # Type a function character by character through incremental changes.
    typed = "def double(x):\n    return "
    line, col = 1, 0
    for version, char in enumerate(typed, start=2):
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=line, character=col),
                            end=types.Position(line=line, character=col),
                        ),
                        text=char,
                    )
                ],
            )
        )
        if char == "\n":
            line, col = line + 1, 0
        else:
            col += 1
    result = await inline(client, URI, types.Position(line=line, character=col))
    assert result.items, "expected a completion for the body of double()"
    assert "x" in result.items[0].insert_text


async def test_cancelled_request_and_server_keeps_serving(client: LanguageClient) -> None:
    await wait_for_model(client)
    open_document(client, URI, DEMO)
    position = position_after(DEMO, "    sy = ")
    await cancel_mid_generation(client, URI, position)
    result = await inline(client, URI, position)
    assert result.items and "p.y" in result.items[0].insert_text


async def test_unopened_document_gets_empty_answer_and_a_message(client: LanguageClient) -> None:
    await wait_for_model(client)
    result = await inline(client, "file:///never/opened.py", types.Position(line=0, character=0))
    assert list(result.items) == []
    for _ in range(40):
        if client.messages:
            break
        await asyncio.sleep(0.05)
    assert any("not open" in m.message for m in client.messages), client.messages


async def test_typing_the_completion_is_answered_from_the_cache(client: LanguageClient) -> None:
    await wait_for_model(client)
    open_document(client, URI, DEMO)
    position = position_after(DEMO, "    sy = ")
    first = (await inline(client, URI, position)).items[0].insert_text
    assert len(first) > 2
    prefills = (await status(client))["engine"]["prefills"]  # a cold start may have made one
    # Type the first two characters of the completion, as the user would.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=position, end=position), text=first[:2]
                )
            ],
        )
    )
    moved = types.Position(line=position.line, character=position.character + 2)
    second = await inline(client, URI, moved)
    assert second.items[0].insert_text == first[2:]
    assert (await status(client))["cacheHits"] == 1  # answered without the model
    # Meanwhile the idle model evaluates the typed document's prompt, for the next key.
    for _ in range(200):
        if (await status(client))["engine"]["prefills"] > prefills:
            break
        await asyncio.sleep(0.05)
    assert (await status(client))["engine"]["prefills"] == prefills + 1
