"""Shared pieces for tests that run `inkling serve` as a subprocess."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, "-m", "lsp_server", "serve"]


async def status(client: LanguageClient) -> dict[str, Any]:
    result: Any = await client.protocol.send_request_async("inkling/status", None)
    return _plain(result)


def _plain(value: Any) -> Any:
    """pygls hands back results of custom requests as (nested) namedtuples."""
    if hasattr(value, "_asdict"):
        return {key: _plain(item) for key, item in value._asdict().items()}
    return value


async def wait_for_model(client: LanguageClient, timeout: float = 180.0) -> dict[str, Any]:
    """Poll the server's status until the model is ready or has failed."""
    deadline = time.monotonic() + timeout
    while True:
        current = await status(client)
        if current["state"] in ("ready", "failed") or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.05)


def open_document(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )


def position_after(text: str, marker: str) -> types.Position:
    """The LSP position (UTF-16) just after the first `marker` in `text`."""
    offset = text.index(marker) + len(marker)
    line = text.count("\n", 0, offset)
    column_text = text[text.rfind("\n", 0, offset) + 1 : offset]
    return types.Position(line=line, character=len(column_text.encode("utf-16-le")) // 2)


async def inline(
    client: LanguageClient,
    uri: str,
    position: types.Position,
    trigger: types.InlineCompletionTriggerKind = types.InlineCompletionTriggerKind.Automatic,
) -> Any:
    """An inline request; `trigger` Invoked is the user asking (a keybinding, cycling)."""
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(trigger_kind=trigger),
        )
    )


async def cancel_mid_generation(client: LanguageClient, uri: str, position: types.Position) -> None:
    """Send an inline request, cancel it while it generates, and check that it is answered as
    cancelled (not left hanging)."""
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    # pytest-lsp's send_request_async is a coroutine: run it so the request goes out.
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="to-cancel")
    )
    await asyncio.sleep(0.05)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="to-cancel"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(pending, timeout=30)


# Behaviour tests must not depend on how busy the machine is: with these
# budgets a completion is never cut short by the clock.
UNHURRIED = {"timeBudgetInlineMs": 30000, "timeBudgetBlockMs": 60000}
