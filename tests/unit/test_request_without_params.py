"""JSON-RPC lets a request omit `params`; vscode-languageclient does so for `inkling/status`."""

from __future__ import annotations

from lsp_server.server import create_server


def test_a_custom_request_without_params_is_understood() -> None:
    protocol = create_server([]).protocol
    message = protocol.structure_message({"jsonrpc": "2.0", "id": 7, "method": "inkling/status"})
    assert message.id == 7 and message.method == "inkling/status" and message.params is None
