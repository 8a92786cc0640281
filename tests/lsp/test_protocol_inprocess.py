"""The hardened protocol in-process: bookkeeping that a subprocess test cannot see.

No model is loaded: these check what the protocol layer keeps per message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from lsp_server.server import InklingServer, create_server


class _Writer:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.frames.append(json.loads(data.split(b"\r\n\r\n", 1)[1]))

    def close(self) -> None:
        pass


def _feed(server: InklingServer, message: dict[str, Any]) -> None:
    protocol = server.protocol
    protocol.handle_message(json.loads(json.dumps(message), object_hook=protocol.structure_message))


async def test_keystrokes_leave_no_bookkeeping_behind() -> None:
    """pygls files a future for every notification and never drops it: about 1.8 KB
    per keystroke, forever. The server's protocol must keep nothing per message."""
    server = create_server([])
    writer = _Writer()
    server.protocol.set_writer(writer)
    _feed(
        server,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"processId": None, "rootUri": None, "capabilities": {}},
        },
    )
    await asyncio.sleep(0.05)
    uri = "file:///typed.py"
    document = {"uri": uri, "languageId": "python", "version": 1, "text": ""}
    _feed(server, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": document}})
    for column in range(2000):
        position = {"line": 0, "character": column}
        _feed(
            server,
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didChange",
                "params": {
                    "textDocument": {"uri": uri, "version": column + 2},
                    "contentChanges": [{"range": {"start": position, "end": position}, "text": "x"}],
                },
            },
        )
        if column % 100 == 0:
            _feed(server, {"jsonrpc": "2.0", "id": f"s{column}", "method": "inkling/status"})
    await asyncio.sleep(0.1)
    assert server.service.documents.snapshot(uri).text == "x" * 2000
    assert len(server.protocol._request_futures) == 0
    answered = {frame.get("id") for frame in writer.frames}
    assert {f"s{c}" for c in range(0, 2000, 100)} <= answered  # requests were answered meanwhile


def test_shown_messages_are_bounded() -> None:
    """Each distinct problem is shown once; a client provoking endless distinct
    messages (unopened URIs, say) must not grow the memory of what was shown."""
    server = create_server([])
    for number in range(5000):
        server.tell(f"file:///never/{number}.py is not open")
    assert len(server._shown) <= 200


async def test_edits_in_another_buffer_reach_project_context(tmp_path: Any) -> None:
    """A function added in one open buffer is offered as context in another, and the
    edited region joins the ring of recent chunks (didChange feeds the index)."""
    from pathlib import Path

    from lsp_server.languages import language_for_id
    from lsp_server.project_context import ContextBudget

    server = create_server([])
    server.protocol.set_writer(_Writer())
    root = Path(tmp_path)
    _feed(
        server,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"processId": None, "rootUri": root.as_uri(), "capabilities": {}},
        },
    )
    await asyncio.sleep(0.05)
    helper, main = root / "pricing.py", root / "main.py"
    main_text = "from pricing import total_with_tax\n\nprint(total_with_tax(\n"
    for path, text in ((helper, "RATE = 0.2\n"), (main, main_text)):
        document = {"uri": path.as_uri(), "languageId": "python", "version": 1, "text": text}
        _feed(
            server, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": document}}
        )
    added = "\n\ndef total_with_tax(prices: list[float], rate: float = RATE) -> float:\n    return sum(prices) * (1 + rate)\n"
    end = {"line": 1, "character": 0}
    _feed(
        server,
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": helper.as_uri(), "version": 2},
                "contentChanges": [{"range": {"start": end, "end": end}, "text": added}],
            },
        },
    )
    await asyncio.sleep(0.05)
    context = server.service.project.gather(
        main, language_for_id("python"), main_text, len(main_text) - 1, ContextBudget(tokens=400)
    )
    joined = "\n".join(piece.text for piece in context)
    assert "def total_with_tax(prices: list[float], rate: float = RATE) -> float" in joined
    assert any(
        chunk.kind == "edit" and chunk.path == helper for chunk in server.service.project._ring.values()
    )
