"""Fault suite, protocol level: the real server over stdio, sent what no good client sends.

For each fault the server must answer (or refuse with a clear message), keep
its copy of every other buffer exact, and go on serving. The buffers are
compared through the debug request `inkling/documentState` (a SHA-256 of the
server's text), so no buffer text is ever logged to check them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lsp.raw_client import RawServer

NO_MODEL = {"INKLING_MODEL": "/nonexistent/model.gguf"}  # lifecycle tests need no model
WITNESS_URI = "file:///work/witness.py"
WITNESS = 'def greet(name: str) -> str:\r\n    """Say hello 👋 in naïve style."""\n    return "hi " + \n'


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    assert "error" in response, response
    error: dict[str, Any] = response["error"]
    assert error["message"], response  # every refusal says why
    return error


def assert_still_serving(server: RawServer) -> None:
    """The witness buffer is exact, status answers, nothing was shown as a server error."""
    state = server.document_state(WITNESS_URI)
    assert state["sha256"] == sha256(WITNESS) and state["outOfSync"] is None
    assert server.call("inkling/status")["result"]["state"] in ("ready", "failed")
    shown = [m["message"] for m in server.notifications("window/showMessage")]
    assert not [m for m in shown if "Error in server" in m], shown
    assert "Traceback" not in server.stderr, server.stderr[-3000:]


@pytest.fixture
def bare() -> Iterator[RawServer]:
    with RawServer(env=NO_MODEL) as server:
        yield server


def test_lifecycle_refusals_and_exit_codes(bare: RawServer) -> None:
    position = {"textDocument": {"uri": WITNESS_URI}, "position": {"line": 0, "character": 0}}
    early = bare.call("textDocument/inlineCompletion", {**position, "context": {"triggerKind": 2}})
    assert error_of(early)["code"] == -32002  # ServerNotInitialized
    bare.open(WITNESS_URI, "dropped before initialize")  # a notification: dropped, as LSP asks
    bare.initialize()
    assert error_of(bare.call("inkling/documentState", {"uri": WITNESS_URI}))["code"] == -32602
    bare.open(WITNESS_URI, WITNESS)
    assert_still_serving(bare)
    assert "result" in bare.call("shutdown")
    late = bare.call("inkling/status")
    assert error_of(late)["code"] == -32600 and "shutting down" in late["error"]["message"]
    bare.open("file:///late.py", "x")  # ignored after shutdown, no crash
    bare.notify("exit")
    assert bare.wait(30) == 0


def test_exit_without_shutdown_is_code_1() -> None:
    with RawServer(env=NO_MODEL) as server:
        server.initialize()
        server.notify("exit")
        assert server.wait(30) == 1


@pytest.mark.model
def test_malformed_messages_get_json_rpc_errors_and_nothing_is_lost() -> None:
    with RawServer() as server:
        server.initialize()
        server.open(WITNESS_URI, WITNESS)
        server.open("file:///work/victim.py", "x = 1\n")

        # Not JSON, not UTF-8: ParseError with id null.
        for body in (b"{not json", b'{"jsonrpc": "2.0", "id": 9, "method": ', b"\xc3\x28\xa0\xa1{}"):
            server.send_bytes(body)
            assert error_of(server.response(None))["code"] == -32700
        # JSON, but not a JSON-RPC 2.0 object: InvalidRequest.
        for body, msg_id in (
            (b"[1, 2]", None),
            (b"[]", None),
            (b'"a string"', None),
            (b"42", None),
            (b'{"id": 10, "method": "inkling/status"}', 10),
            (b'{"jsonrpc": "1.0", "id": 11, "method": "inkling/status"}', 11),
            (b'{"jsonrpc": "2.0", "id": 12, "method": 17}', 12),
        ):
            server.send_bytes(body)
            assert error_of(server.response(msg_id))["code"] == -32600, body
        # A request may leave params out.
        server.send_bytes(b'{"jsonrpc": "2.0", "id": 13, "method": "inkling/status"}')
        assert "result" in server.response(13)
        # Unknown methods: requests are refused, notifications ignored.
        assert error_of(server.call("frobnicate/now", {}))["code"] == -32601
        server.notify("frobnicate/later", {"x": 1})
        server.notify("$/unknownNotification", None)
        # Bad params, each named by its field.
        uri = {"uri": WITNESS_URI}
        for params, field in (
            (
                {
                    "textDocument": uri,
                    "position": {"line": -1, "character": 0},
                    "context": {"triggerKind": 2},
                },
                "line",
            ),
            (
                {
                    "textDocument": uri,
                    "position": {"line": "x", "character": 0},
                    "context": {"triggerKind": 2},
                },
                "line",
            ),
            ({"textDocument": uri, "position": {"line": 0, "character": 0}}, "context"),
            ({"position": {"line": 0, "character": 0}, "context": {"triggerKind": 2}}, "text_document"),
            ("not an object", "params"),
        ):
            error = error_of(server.call("textDocument/inlineCompletion", params))
            assert error["code"] == -32602 and field in error["message"], (params, error)
        # A cancel for a request that does not exist, a response nobody asked for.
        server.notify("$/cancelRequest", {"id": "nothing-like-it"})
        server.send({"jsonrpc": "2.0", "id": "never-sent", "result": {"x": 1}})
        # Edits to a document that is not open: told, nothing else changes.
        server.change("file:///work/not-open.py", 2, (0, 0), (0, 0), "x")
        # An edit that cannot be read loses the client's change: that buffer is marked
        # out of step and its completions refused, clearly, until it is reopened.
        bad_range = {"start": {"line": 0, "character": -4}, "end": {"line": 0, "character": 0}}
        server.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": "file:///work/victim.py", "version": 2},
                "contentChanges": [{"range": bad_range, "text": "y"}],
            },
        )
        victim = server.document_state("file:///work/victim.py")
        assert victim["outOfSync"] and "character" in victim["outOfSync"]
        assert server.wait_ready()["state"] == "ready"
        refused = server.call("textDocument/inlineCompletion", _inline("file:///work/victim.py", 0, 5))
        assert refused["result"]["items"] == []
        messages = [m["message"] for m in server.notifications("window/showMessage")]
        assert any("victim.py" in m and "reopened" in m for m in messages), messages
        server.open("file:///work/victim.py", "x = 2\n", version=3)
        assert server.document_state("file:///work/victim.py")["outOfSync"] is None

        assert_still_serving(server)
        assert server.shutdown_and_exit() == 0


def _inline(uri: str, line: int, character: int) -> dict[str, Any]:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 2},
    }


def test_random_edits_over_the_wire_keep_the_copy_exact() -> None:
    """The property tests' claim, end to end: JSON encoding, surrogate pairs and lone
    surrogates, CRLF and lone CR, several changes per didChange, UTF-16 positions."""
    import random

    from tests.editor_model import position_of, valid_offsets

    # A lone high surrogate only: a high and a low half that meet would be one character
    # to the server once JSON-decoded, and two in this str model of the editor.
    pieces = ["a", "bc", " ", "\n", "\r\n", "\r", "é", "€", "😀", "𝔸", "\ud800", "\t", "()"]
    rng = random.Random(20261124)
    editor = "start\r\n"
    with RawServer(env=NO_MODEL) as server:  # sync does not need the model
        server.initialize()
        server.open(WITNESS_URI, WITNESS)
        server.open("file:///work/random.txt", editor, language="plaintext")
        for version in range(2, 402):
            changes = []
            for _ in range(rng.randint(1, 3)):
                offsets = valid_offsets(editor)
                a, b = sorted((rng.choice(offsets), rng.choice(offsets)))
                if rng.random() < 0.5:
                    b = min(len(editor), a + rng.randint(0, 2))
                    b = b if b in offsets else a
                text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
                start, end = position_of(editor, a), position_of(editor, b)
                changes.append(
                    {
                        "range": {
                            "start": {"line": start[0], "character": start[1]},
                            "end": {"line": end[0], "character": end[1]},
                        },
                        "text": text,
                    }
                )
                editor = editor[:a] + text + editor[b:]
            server.send_bytes(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "method": "textDocument/didChange",
                        "params": {
                            "textDocument": {"uri": "file:///work/random.txt", "version": version},
                            "contentChanges": changes,
                        },
                    }
                ).encode("utf-8")
            )
            if version % 100 == 0:
                state = server.document_state("file:///work/random.txt")
                assert (state["version"], state["sha256"]) == (version, sha256(editor))
        assert_still_serving(server)
        assert server.shutdown_and_exit() == 0
