"""Security: no network, nothing executed or written, no buffer text in the logs.

A full completion session (load, open, edit, complete, accept, shutdown) runs
under tests/lsp/guarded_launch.py, whose audit hooks refuse and report any
socket other than the stdio transport, any new process and any file write
outside the server's state directory; where the machine allows it, inside a
network namespace with no interfaces (`unshare -n`), which also covers
llama.cpp's C code. Afterwards no file may have appeared in the home, cache,
temporary or working directory it was given, and the state directory may
hold only the acceptance counts, which must not contain any code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.acceptance import ACCEPT_COMMAND
from lsp_server.models import resolve_model
from tests.lsp.raw_client import ROOT, RawServer

pytestmark = pytest.mark.model

GUARD = (sys.executable, str(ROOT / "tests" / "lsp" / "guarded_launch.py"))
# Code whose natural continuation is a shell command: the model's answer must come
# back as text in insertText, and nothing may run.
TEMPTING = 'import os\nimport subprocess\n\n\ndef wipe(folder):\n    os.system("rm -rf " + '
MARKER = "zq_private_marker_8731"
PRIVATE = f'{MARKER} = "do not log me"\n\n\ndef {MARKER}_total(values):\n    return sum(values) + \n'


def _network_namespace() -> list[str]:
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    return ["unshare", "-n"] if probe.returncode == 0 else []


def test_the_guard_refuses_each_kind_of_attempt(tmp_path: Path) -> None:
    """The guard itself can fail: a socket, a name lookup, a process and a write are refused."""
    result = subprocess.run(
        [*GUARD, "--self-test"], capture_output=True, text=True, env={"TMPDIR": str(tmp_path)}, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("GUARD VIOLATION") == 5


def test_a_full_session_uses_no_network_runs_nothing_and_writes_nothing(tmp_path: Path) -> None:
    places = {name: tmp_path / name for name in ("home", "cache", "tmp", "work", "state")}
    for place in places.values():
        place.mkdir()
    env = {
        "HOME": str(places["home"]),
        "XDG_CACHE_HOME": str(places["cache"]),
        "TMPDIR": str(places["tmp"]),
        "INKLING_MODEL": str(resolve_model().path),
        "PYTHONDONTWRITEBYTECODE": "1",
        # The one place the server writes: its acceptance counts (numbers only, checked below).
        "INKLING_STATE": str(places["state"]),
        "INKLING_GUARD_WRITABLE": str(places["state"]),
    }
    namespace = _network_namespace()
    options = {"timeBudgetInlineMs": 20_000, "maxTokensInline": 16}
    with RawServer(launcher=GUARD, wrapper=namespace, env=env, cwd=places["work"]) as server:
        server.initialize(options)
        assert server.wait_ready()["state"] == "ready", server.stderr[-2000:]
        uri = "file:///work/wipe.py"
        server.open(uri, TEMPTING)
        lines = TEMPTING.split("\n")
        inline = server.call("textDocument/inlineCompletion", _inline(uri, len(lines) - 1, len(lines[-1])))
        items = inline["result"]["items"]
        menu = server.call(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": len(lines) - 1, "character": len(lines[-1])}},
        )["result"]["items"]
        for item in items:  # the user accepts: the editor runs the item's command
            command = item["command"]
            server.call(
                "workspace/executeCommand", {"command": command["command"], "arguments": command["arguments"]}
            )
        server.change(uri, 2, (len(lines) - 1, len(lines[-1])), (len(lines) - 1, len(lines[-1])), "folder")
        server.call("textDocument/inlineCompletion", _inline(uri, len(lines) - 1, len(lines[-1]) + 6))
        assert server.shutdown_and_exit() == 0
        log = server.stderr
    assert "GUARD VIOLATION" not in log, log[-3000:]
    # Whatever the model wrote is data: text to insert. The only command attached is
    # Inkling's own acceptance counter, whose one argument is an opaque item id.
    texts = [item["insertText"] for item in items] + [item["textEdit"]["newText"] for item in menu]
    for item in [*items, *menu]:
        assert set(item) & {"additionalTextEdits", "data"} == set()
        command = item.get("command")
        assert command is None or (command["command"] == ACCEPT_COMMAND and len(command["arguments"]) == 1)
        assert command is None or all(command["arguments"][0] not in text for text in [TEMPTING, *texts])
    assert all(isinstance(text, str) for text in texts)
    written = sorted(str(p.relative_to(tmp_path)) for place in places.values() for p in place.rglob("*"))
    assert set(written) <= {"state/acceptance.json", "state/acceptance.json.lock"}, written
    if "state/acceptance.json" in written:
        counts = (places["state"] / "acceptance.json").read_text()
        assert not any(text.strip() and text.strip() in counts for text in [*texts, "rm -rf", "wipe"])
        assert json.loads(counts)["total"]["accepted"] == len(items)
    print(f"network namespace: {'unshare -n' if namespace else 'not available (audit hooks only)'}")
    print(f"completion returned as text: {[i['insertText'] for i in items]}")


def _inline(uri: str, line: int, character: int) -> dict[str, object]:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 2},
    }


def _private_session(log_buffers: bool) -> str:
    """A session with DEBUG logs that touches the marker every way it can; returns the log."""
    with RawServer(global_args=["--log-level", "DEBUG"]) as server:
        server.initialize({"logBuffers": log_buffers, "timeBudgetInlineMs": 20_000})
        assert server.wait_ready()["state"] == "ready"
        uri = "file:///work/private.py"
        server.open(uri, PRIVATE)
        server.change(uri, 2, (0, 0), (0, 0), f"# {MARKER}\n")
        server.call("textDocument/inlineCompletion", _inline(uri, 5, 22))
        position = {"line": 5, "character": 22}
        server.call("textDocument/completion", {"textDocument": {"uri": uri}, "position": position})
        # Malformed messages that carry the marker: their refusals must not quote it.
        server.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": 3},
                "contentChanges": [{"range": {"start": {"line": -1, "character": 0}}, "text": MARKER}],
            },
        )
        server.call("textDocument/inlineCompletion", {**_inline(uri, 0, 0), "position": {"line": MARKER}})
        bad_open = {"uri": uri, "version": MARKER, "text": MARKER}
        server.notify("textDocument/didOpen", {"textDocument": bad_open})
        server.send_bytes(f'{{"jsonrpc": "2.0", "id": 99, "method": "x", "params": "{MARKER}'.encode())
        server.response(None)
        assert server.shutdown_and_exit() == 0
        return server.stderr


def test_buffer_text_stays_out_of_the_logs_unless_log_buffers() -> None:
    log = _private_session(log_buffers=False)
    assert "Sending data: <" in log and "Request 'textDocument/inlineCompletion' received" in log
    assert MARKER not in log, [line for line in log.splitlines() if MARKER in line]
    # The same session with logBuffers on does show it: the check above can fail.
    assert MARKER in _private_session(log_buffers=True)
