"""The feedback tracker decides outcomes from edits, accepts, later requests and closes;
the store keeps them scrubbed, bounded, and whole after a crash."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from lsp_server.cli import add_setting_flags, settings_from_args
from lsp_server.feedback import (
    COLUMN_NAMES,
    FeedbackStore,
    FeedbackTracker,
    FeedbackWriter,
    OfferContext,
    model_fingerprint,
    prompt_windows,
    typed_extent,
)

URI = "file:///work/app.py"
TEXT = "import os\n\n\ndef area(w, h):\n    \n\n\nprint(area(2, 3))\n"
CURSOR = TEXT.index("    \n") + 4


class ListSink:
    """Stands in for the writer: records in a list."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.accepted: list[str] = []
        self.written = 0

    def put(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def mark_accepted(self, item: str) -> None:
        self.accepted.append(item)

    def close(self) -> None:
        pass


def context(**changes: Any) -> OfferContext:
    values: dict[str, Any] = {
        "language": "python",
        "kind": "inline",
        "mode": "inline",
        "client": "Test",
        "file": "app.py",
        "model": "model.gguf",
        "model_hash": "0123456789abcdef",
        "template": "inkling",
        "prompt_order": "spm",
        "settings": {"max_tokens_inline": 48},
        "prefix_tokens": 1024,
        "suffix_tokens": 256,
    }
    values.update(changes)
    return OfferContext(**values)


def tracker() -> tuple[FeedbackTracker, ListSink]:
    sink = ListSink()
    return FeedbackTracker(sink), sink  # type: ignore[arg-type]


def typed(text: str, at: int, insert: str) -> str:
    return text[:at] + insert + text[at:]


def test_accepted_by_the_items_command() -> None:
    feedback, sink = tracker()
    feedback.offered("a", URI, TEXT, CURSOR, "return w * h", context())
    assert feedback.accepted("a")
    # The editor's insertion arrives after the command: nothing more is recorded.
    feedback.changed(URI, typed(TEXT, CURSOR, "return w * h"))
    [record] = sink.records
    assert record["outcome"] == "accepted" and record["how"] == "command"
    assert record["completion"] == record["typed"] == "return w * h" and record["typed_complete"] == 1
    assert record["prefix"].endswith("def area(w, h):\n    ") and record["suffix"].startswith("\n\n\nprint")
    assert record["model_hash"] == "0123456789abcdef" and json.loads(record["settings"]) == {
        "max_tokens_inline": 48
    }
    assert not feedback.watching(URI)


def test_insertion_before_the_command_is_upgraded_to_a_command_accept() -> None:
    feedback, sink = tracker()
    feedback.offered("a", URI, TEXT, CURSOR, "return w * h", context())
    feedback.changed(URI, typed(TEXT, CURSOR, "return w * h"))
    [record] = sink.records
    assert (record["outcome"], record["how"]) == ("accepted", "typed")
    assert feedback.accepted("a") and sink.accepted == ["a"]
    assert not feedback.accepted("never-offered")


def test_typing_along_is_one_offer_and_its_rest_can_be_accepted() -> None:
    feedback, sink = tracker()
    feedback.offered("a", URI, TEXT, CURSOR, "return w * h", context())
    text = typed(TEXT, CURSOR, "ret")
    feedback.changed(URI, text)
    feedback.offered("b", URI, text, CURSOR + 3, "urn w * h", context())  # the cache's rest of it
    assert feedback.pending == 1 and not sink.records
    assert feedback.accepted("b")
    [record] = sink.records
    assert (
        record["item"] == "a" and record["outcome"] == "accepted" and record["completion"] == "return w * h"
    )


def test_rejected_when_other_text_is_typed_and_what_was_typed_is_kept() -> None:
    feedback, sink = tracker()
    feedback.offered("a", URI, TEXT, CURSOR, "pass", context())
    text = TEXT
    for n, char in enumerate("return w * h\n    "):
        text = typed(text, CURSOR + n, char)
        feedback.changed(URI, text)
    [record] = sink.records
    assert (record["outcome"], record["reason"], record["matched_chars"]) == ("rejected", "diverged", 0)
    assert record["typed"] == "return w * h" and record["typed_complete"] == 1


def test_partial_when_a_prefix_was_typed_then_other_text() -> None:
    feedback, sink = tracker()
    feedback.offered("a", URI, TEXT, CURSOR, "return w + h", context())
    feedback.changed(URI, typed(TEXT, CURSOR, "return w * h\n"))
    [record] = sink.records
    assert (record["outcome"], record["matched_chars"]) == ("partial", 9)
    assert record["typed"] == "return w * h"


def test_a_later_request_at_the_same_place_replaces_it() -> None:
    feedback, sink = tracker()
    feedback.offered("a", URI, TEXT, CURSOR, "pass", context())
    feedback.offered("b", URI, TEXT, CURSOR, "return w * h", context())
    assert feedback.pending == 2 and not sink.records  # "a" is decided, and still watched
    feedback.offered("c", URI, TEXT, CURSOR, "return 0", context())
    feedback.closed(URI)
    outcomes = {r["item"]: (r["outcome"], r["reason"]) for r in sink.records}
    assert outcomes == {
        "a": ("rejected", "replaced"),
        "b": ("rejected", "replaced"),
        "c": ("rejected", "closed"),
    }


def test_closing_the_document_settles_pending_offers() -> None:
    feedback, sink = tracker()
    feedback.offered("a", URI, TEXT, CURSOR, "return w * h", context())
    feedback.changed(URI, typed(TEXT, CURSOR, "retu"))
    feedback.closed(URI)
    [record] = sink.records
    assert (record["outcome"], record["reason"], record["matched_chars"]) == ("partial", "closed", 4)
    assert record["typed"] == "retu" and record["typed_complete"] == 0
    assert not feedback.watching(URI)


def test_an_edit_elsewhere_ends_the_watch() -> None:
    feedback, sink = tracker()
    feedback.offered("a", URI, TEXT, CURSOR, "return w * h", context())
    feedback.changed(URI, "import sys\n" + TEXT)  # the text before the place changed
    [record] = sink.records
    assert (record["outcome"], record["reason"]) == ("rejected", "moved")


def test_a_block_is_watched_for_as_many_lines_as_it_has() -> None:
    feedback, sink = tracker()
    block = "if w < 0:\n        raise ValueError(w)\n    return w * h"
    feedback.offered("a", URI, TEXT, CURSOR, block, context(mode="block"))
    text = typed(TEXT, CURSOR, "if not w:\n        return 0\n")
    feedback.changed(URI, text)
    assert not sink.records
    feedback.changed(URI, typed(text, CURSOR + len("if not w:\n        return 0\n"), "    return w * h\n"))
    [record] = sink.records
    assert (
        record["outcome"] == "partial" and record["typed"] == "if not w:\n        return 0\n    return w * h"
    )


def test_every_stored_text_is_scrubbed() -> None:
    feedback, sink = tracker()
    secret = 'KEY = "AKIAABCDEFGHIJKLMNOP"\nOWNER = "jane.doe@corp.io"\n'
    text = secret + TEXT
    cursor = len(secret) + CURSOR
    feedback.offered("a", URI, text, cursor, "send('jane.doe@corp.io')", context(file="jane.doe@corp.io.py"))
    feedback.closed(URI)
    [record] = sink.records
    flat = json.dumps(record)
    assert "AKIA" not in flat and "jane.doe" not in flat
    assert "<AWS_ACCESS_KEY>" in record["prefix"] and "user@example.com" in record["completion"]


def test_turning_it_off_forgets_what_is_pending() -> None:
    feedback, sink = tracker()
    feedback.offered("a", URI, TEXT, CURSOR, "pass", context())
    feedback.discard()
    feedback.settle_all()
    assert not sink.records and feedback.pending == 0


def test_prompt_windows_keep_whole_lines_within_the_budgets() -> None:
    text = "".join(f"line {n}\n" for n in range(2000))
    offset = text.index("line 1000\n")
    before, after = prompt_windows(text, offset, prefix_tokens=100, suffix_tokens=20)
    assert len(before) <= 300 and before.startswith("line ") and text[:offset].endswith(before)
    assert len(after) <= 60 and after.endswith("\n") and text[offset:].startswith(after)


def test_typed_extent() -> None:
    assert typed_extent("abc\ndef", "xyz") == ("abc", True)
    assert typed_extent("abc", "xyz") == ("abc", False)
    assert typed_extent("a\nb\nc", "x\ny") == ("a\nb", True)
    # Gone elsewhere after typing as many lines as the completion has: that was the line.
    assert typed_extent("abc", "xyz", left=True) == ("abc", True)
    assert typed_extent("", "xyz", left=True) == ("", False)
    assert typed_extent("abc", "x\ny", left=True) == ("abc", False)


def test_model_fingerprint_tells_files_apart_cheaply(tmp_path: Path) -> None:
    first, second = tmp_path / "a.gguf", tmp_path / "b.gguf"
    first.write_bytes(b"GGUF" + b"\0" * 3_000_000)
    second.write_bytes(b"GGUF" + b"\0" * 2_999_999 + b"\1")
    assert len(model_fingerprint(first)) == 16
    assert model_fingerprint(first) != model_fingerprint(second)
    assert model_fingerprint(first) != model_fingerprint(first, second)
    assert model_fingerprint(tmp_path / "missing.gguf") == ""


# -- the store ------------------------------------------------------------------------------


def record(item: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {name: "" for name in COLUMN_NAMES}
    values.update(
        item=item,
        outcome="rejected",
        matched_chars=0,
        typed_complete=1,
        settings="{}",
        language="python",
        completion="pass",
        prefix="x" * 200,
    )
    values.update(changes)
    return values


def test_store_round_trip_counts_and_late_accepts(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    store.add([record("a"), record("b", outcome="partial", language="go"), record("c", outcome="accepted")])
    store.add([], ["a"])
    rows = {r["item"]: r for r in store.records()}
    assert (
        rows["a"]["outcome"] == "accepted" and rows["a"]["how"] == "command" and rows["a"]["typed"] == "pass"
    )
    counts = store.counts()
    assert counts["total"] == {"accepted": 2, "rejected": 0, "partial": 1}
    assert counts["byLanguage"]["go"]["partial"] == 1
    assert [r["item"] for r in store.records("accepted")] == ["a", "c"]
    assert (tmp_path / "feedback.sqlite3").stat().st_mode & 0o077 == 0
    assert store.clear() == 3 and store.count() == 0


def test_store_past_its_size_limit_deletes_the_oldest(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite3", max_bytes=400_000)
    for batch in range(40):
        store.add([record(f"{batch}-{n}", prefix="y" * 2000) for n in range(20)])
    assert store.used_bytes() <= 400_000
    items = [r["item"] for r in store.records()]
    assert items[-1] == "39-19" and "0-0" not in items
    assert (tmp_path / "feedback.sqlite3").stat().st_size < 1_000_000


def test_writer_writes_on_its_thread_and_survives_an_unwritable_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = FeedbackWriter(tmp_path / "state" / "feedback.sqlite3")
    writer.put(record("a"))
    assert writer.flush()
    assert FeedbackStore(tmp_path / "state" / "feedback.sqlite3").count() == 1
    writer.close()
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    broken = FeedbackWriter(blocked / "feedback.sqlite3")
    broken.put(record("b"))
    broken.put(record("c"))
    assert broken.flush()
    broken.close()
    assert sum("cannot write feedback" in r.message for r in caplog.records) == 1


CRASHING_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from lsp_server.feedback import COLUMN_NAMES, FeedbackStore

    store = FeedbackStore(Path(sys.argv[1]), max_bytes=1 << 30)
    n = 0
    while True:
        rows = []
        for _ in range(50):
            row = {name: "" for name in COLUMN_NAMES}
            row.update(item=str(n), outcome="rejected", matched_chars=n, typed_complete=1,
                       settings='{"n": %d}' % n, prefix="p" * 3000, completion="c" * 100)
            rows.append(row)
            n += 1
        store.add(rows)
        print(n, flush=True)
    """
)


def test_store_after_a_crash_mid_write_is_whole(tmp_path: Path) -> None:
    """SIGKILL while transactions are being written, then a torn tail on the write-ahead log:
    the database opens, passes SQLite's integrity check, and holds whole records only."""
    path = tmp_path / "feedback.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert writer.stdout is not None
    deadline = time.monotonic() + 60
    while int(writer.stdout.readline() or 0) < 500 and time.monotonic() < deadline:
        pass
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size > 0  # the kill left committed transactions in the log
    with wal.open("r+b") as handle:  # as if the last write reached the disk only in part
        handle.truncate(wal.stat().st_size - 1000)

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    rows = list(FeedbackStore(path).records())
    assert len(rows) >= 450 and len(rows) % 50 == 0  # whole transactions only
    for row in rows:
        assert row["settings"] == {"n": row["matched_chars"]} and len(row["prefix"]) == 3000
    assert [int(r["item"]) for r in rows] == list(range(len(rows)))


def test_boolean_setting_flags_need_no_value() -> None:
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    settings, _ = settings_from_args(parser.parse_args(["--record-feedback"]), strict=True)
    assert settings.record_feedback
    settings, _ = settings_from_args(parser.parse_args(["--record-feedback", "false"]), strict=True)
    assert not settings.record_feedback
    assert not settings_from_args(parser.parse_args([]))[0].record_feedback


def _inkling(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lsp_server", "feedback", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_feedback_stats_export_and_clear_commands(tmp_path: Path) -> None:
    path = tmp_path / "feedback.sqlite3"
    store = FeedbackStore(path)
    store.add([record("a", outcome="accepted"), record("b"), record("c", outcome="partial", language="go")])
    store.close()
    shown = _inkling("stats", "--file", str(path))
    assert shown.returncode == 0 and "language go" in shown.stdout
    counts = json.loads(_inkling("stats", "--json", "--file", str(path)).stdout)
    assert counts["total"] == {"accepted": 1, "rejected": 1, "partial": 1}
    out = tmp_path / "out.jsonl"
    assert _inkling("export", str(out), "--file", str(path), "--outcome", "accepted").returncode == 0
    [line] = out.read_text().splitlines()
    assert json.loads(line)["item"] == "a" and json.loads(line)["outcome"] == "accepted"
    refused = _inkling("clear", "--file", str(path), stdin="y\n")  # not a terminal: --yes is needed
    assert refused.returncode == 1 and FeedbackStore(path).count() == 3
    cleared = _inkling("clear", "--yes", "--file", str(path))
    assert cleared.returncode == 0 and "3 records deleted" in cleared.stdout
    assert FeedbackStore(path).count() == 0
    assert "no feedback recorded" in _inkling("stats", "--file", str(tmp_path / "none.sqlite3")).stdout
