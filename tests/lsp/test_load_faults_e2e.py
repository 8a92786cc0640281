"""Fault suite, load and lifecycle: the real server with the real model, under abuse.

Giant, binary and deeply nested files; a flood of completion requests with
cancellations; a keystroke soak with RSS sampled; a client that vanishes and
a SIGTERM while a generation runs. The full-size flood and soak are
`python -m tests.stress` (figures in docs/robustness.md); here they run small.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from lsp_server.lsp_client import InklingClient, cpu_seconds, rss_kib
from tests import stress
from tests.editor_model import end_position
from tests.lsp.raw_client import ROOT, RawServer
from tests.lsp.test_protocol_faults_e2e import WITNESS, WITNESS_URI, assert_still_serving, sha256

pytestmark = [pytest.mark.model, pytest.mark.slow]

# Small budgets: these tests are about surviving the input, not about good completions.
FAST = ["--time-budget-inline-ms", "400", "--max-tokens-inline", "8", "--prefix-tokens", "128"]

MINIFIED = ("var a=1,b=[1,2,3].map(function(x){return x*2});" * 105_000)[:5_000_000]
BINARY = bytes(range(256)).decode("latin-1") * 4000 + "\x00\ufffd\ud800"
JUNK = bytes(range(1, 256)).decode("latin-1") * 1000 + "\ufffd\ud800"  # noise without a NUL
NESTED_PY = "x = " + "(" * 5000 + "1" + ")" * 5000 + "\ny = " + "[" * 20_000 + "\n"
NESTED_JS = "function f(){" * 3000 + "\n  return "


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    """One server for all the hostile files: each must leave it serving the next."""
    with RawServer(FAST) as running:
        running.initialize()
        assert running.wait_ready()["state"] == "ready"
        running.open(WITNESS_URI, WITNESS)
        yield running
        assert running.shutdown_and_exit() == 0


@pytest.mark.parametrize(
    ("name", "language", "text"),
    [
        ("minified.js", "javascript", MINIFIED),
        ("blob.bin", "plaintext", BINARY),
        ("blob.py", "python", BINARY),
        ("junk.py", "python", JUNK),
        ("nested.py", "python", NESTED_PY),
        ("nested.js", "javascript", NESTED_JS),
    ],
    ids=["5MB-line", "binary-plaintext", "binary-as-python", "junk-as-python", "nested-python", "nested-js"],
)
def test_hostile_files_are_answered_and_kept_exact(
    server: RawServer, name: str, language: str, text: str
) -> None:
    uri = f"file:///work/{name}"
    server.open(uri, text, language=language)
    timings = []
    for line, character in ((0, 7), end_position(text)):
        started = time.perf_counter()
        response = server.call("textDocument/inlineCompletion", _inline(uri, line, character), timeout=240)
        timings.append(round(time.perf_counter() - started, 2))
        assert isinstance(response["result"]["items"], list), response
    # Typing at the end of it (a lookup at the far end of a 5 MB line per keystroke).
    editor = text
    for version, char in enumerate("abc😀\r\nd", start=2):
        end = end_position(editor)
        server.change(uri, version, end, end, char)
        editor += char
    state = server.document_state(uri)
    assert state["sha256"] == sha256(editor) and state["outOfSync"] is None
    witness = server.call("textDocument/inlineCompletion", _inline(WITNESS_URI, 2, 18), timeout=240)
    assert "result" in witness
    assert_still_serving(server)
    server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    print(f"{name}: completion seconds at column 7 and at the end: {timings}")


def _inline(uri: str, line: int, character: int) -> dict[str, object]:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 2},
    }


LONG_PROMPT = "".join(f"def function_{i}(value):\n    return value * {i} + {i}\n\n" for i in range(400))
LONG_PROMPT += "def main():\n    total = "
BUSY = ["--prefix-tokens", "3000", "--time-budget-inline-ms", "60000", "--max-tokens-inline", "1024"]


def _start_a_long_generation(server: RawServer) -> None:
    """Open a long file and ask at its end; return once the server is busy with it."""
    server.initialize()
    assert server.wait_ready()["state"] == "ready"
    server.open("file:///work/long.py", LONG_PROMPT)
    pid = server.process.pid
    before = cpu_seconds(pid)
    server.inline_request("file:///work/long.py", *end_position(LONG_PROMPT))
    deadline = time.monotonic() + 60
    while cpu_seconds(pid) - before < 0.5:  # the prompt is being evaluated
        assert time.monotonic() < deadline, "the generation never started"
        time.sleep(0.05)


def test_sigterm_during_a_generation_exits_cleanly() -> None:
    with RawServer(BUSY) as server:
        _start_a_long_generation(server)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0
        assert time.monotonic() - started < 15
        log = server.stderr
        assert "SIGTERM" in log and "stopped" in log and "Traceback" not in log, log[-2000:]


@pytest.mark.parametrize("how", ["stdin-closed", "both-pipes-closed"])
def test_a_client_that_vanishes_mid_generation_stops_the_server(how: str) -> None:
    with RawServer(BUSY) as server:
        _start_a_long_generation(server)
        started = time.monotonic()
        if how == "both-pipes-closed":
            server.close_stdout()
        assert server.process.stdin is not None
        server.process.stdin.close()
        assert server.wait(30) == 1  # no shutdown request: LSP's code for that
        assert time.monotonic() - started < 15
        assert "Traceback" not in server.stderr, server.stderr[-2000:]


async def test_a_flood_with_cancellations_builds_no_queue_and_a_soak_stays_flat() -> None:
    """The full sizes (1,000 requests in 10 s, 10,000 keystrokes) run in `python -m tests.stress`."""
    client = InklingClient()
    await client.start({"timeBudgetInlineMs": 1200})
    try:
        assert (await client.wait_ready())["state"] == "ready"
        flood = await stress.flood(client, requests=300, seconds=3.0)
        assert flood.lost == 0 and flood.errors == [], flood
        assert flood.answered + flood.cancelled == flood.requests, flood
        # The client cancels before it sends the next request, so each cancel reaches a
        # request that is still generating and must win over its answer.
        assert flood.cancels_sent > 50 and flood.cancelled >= 0.9 * flood.cancels_sent, flood
        assert flood.buffer_exact, flood
        # Latest wins: superseded requests come back at once. A queue would make the
        # median a generation's time or more, and the drain many of them.
        assert flood.median_latency_ms < 2_000, flood
        assert flood.drain_ms < 120_000, flood

        soak = await stress.soak(client, keystrokes=1000, rate=200.0, samples=10)
        assert soak.errors == [] and soak.buffer_exact and soak.checks == 10, soak
        assert soak.answered + soak.cancelled == soak.requests == 1000, soak
        assert soak.rss_growth_second_half_kib < 8 * 1024, soak.rss_kib
        assert rss_kib(client.pid)[0] < 2 * 1024 * 1024  # far below anything alarming
    finally:
        assert await client.stop() == 0


def test_a_buffer_that_changes_during_a_generation_gets_no_stale_answer() -> None:
    """The answer's range was computed on the text the request saw; once the buffer
    has changed it would land in the wrong place, so it is dropped (editors ask again)."""
    demo = (ROOT / "examples" / "demo.py").read_text()
    marker = "    sy = "
    offset = demo.index(marker) + len(marker)
    line, character = demo.count("\n", 0, offset), len(marker)
    uri = "file:///work/demo.py"
    with RawServer(["--time-budget-inline-ms", "60000"]) as server:
        server.initialize()
        assert server.wait_ready()["state"] == "ready"
        server.open(uri, demo)
        text = demo

        def append_a_line(version: int) -> None:
            # Far below the cursor: the answer at the cursor stays the same, but the text
            # after it changes, so no cached answer can be reused for the next request.
            nonlocal text
            end = end_position(text)
            server.change(uri, version, end, end, f"# edit {version}\n")
            text += f"# edit {version}\n"

        answer = server.call("textDocument/inlineCompletion", _inline(uri, line, character), timeout=180)
        assert answer["result"]["items"], "the model should complete this line"
        append_a_line(2)
        # The same request, with an edit arriving while it is generated: dropped.
        msg_id = server.inline_request(uri, line, character)
        append_a_line(3)
        assert server.response(msg_id, timeout=180)["result"]["items"] == []
        # Asked again on the new version: answered.
        again = server.call("textDocument/inlineCompletion", _inline(uri, line, character), timeout=180)
        assert again["result"]["items"]
        assert server.shutdown_and_exit() == 0
