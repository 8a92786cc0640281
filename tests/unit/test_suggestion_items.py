"""An answer with alternatives as LSP items: one item each, each with its own accept command;
the answer counts once as offered, and taking an alternative is recorded as what it is."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from lsp_server.acceptance import AcceptanceLog, read_record
from lsp_server.context import Mode
from lsp_server.feedback import FeedbackTracker
from lsp_server.pipeline import Completion, Status
from lsp_server.server import InklingServer, accepted, completion_items, create_server, inline_items
from lsp_server.settings import Settings
from tests.unit.test_feedback import ListSink, context

URI = "file:///work/pick.py"
TEXT = "def pick(a, b):\n    return max(a, \n"
OFFSET = TEXT.index("max(a, ") + len("max(a, ")
ANSWER = Completion("b)", OFFSET, Mode.INLINE, "", Status.OFFERED, alternatives=("a)", "b, 0)", "0)"))


async def _server(tmp_path: Path, **settings: Any) -> tuple[InklingServer, ListSink]:
    server = create_server([])
    server.protocol.set_writer(_Discard())
    message = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
    server.protocol.handle_message(
        json.loads(json.dumps(message), object_hook=server.protocol.structure_message)
    )
    await asyncio.sleep(0.05)
    server.acceptance = AcceptanceLog(tmp_path / "acceptance.json", flush_interval_s=3600)
    sink = ListSink()
    server.feedback = FeedbackTracker(sink)  # type: ignore[arg-type]
    server.service.settings = Settings(**settings)
    server.service.open(URI, "python", 1, TEXT)
    return server, sink


class _Discard:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


async def test_inline_items_carry_the_answer_then_its_alternatives_each_with_its_own_command(
    tmp_path: Path,
) -> None:
    server, _ = await _server(tmp_path, inline_suggestions=3)
    view = server.service.documents.snapshot(URI)
    result = inline_items(server, ANSWER, view)
    assert [item.insert_text for item in result.items] == ["b)", "a)", "b, 0)"]  # at most 3
    ids = [item.command.arguments[0] for item in result.items if item.command and item.command.arguments]
    assert len(set(ids)) == 3
    assert all(item.range is not None and item.range.start == item.range.end for item in result.items)
    # One answer, one offer: the user sees one item at a time and takes at most one.
    assert server.acceptance.session()["shown"] == 1
    accepted(server, ids[1])
    accepted(server, ids[0])  # another item of the same answer: already settled
    assert server.acceptance.session() == {"shown": 1, "accepted": 1, "rate": 1.0}
    by_item = read_record(tmp_path / "acceptance.json")["byItem"]
    assert by_item == {
        "1": {"shown": 1, "accepted": 0},
        "2": {"shown": 1, "accepted": 1},
        "3": {"shown": 1, "accepted": 0},
    }


async def test_one_suggestion_is_one_item_as_before(tmp_path: Path) -> None:
    server, _ = await _server(tmp_path, inline_suggestions=1)
    view = server.service.documents.snapshot(URI)
    assert [item.insert_text for item in inline_items(server, ANSWER, view).items] == ["b)"]
    menu = completion_items(server, ANSWER, view)
    assert [item.text_edit.new_text for item in menu.items if item.text_edit] == ["b)"]


async def test_menu_items_come_in_order_the_first_preselected(tmp_path: Path) -> None:
    server, _ = await _server(tmp_path, inline_suggestions=2)
    text = TEXT.replace("max(a, ", "max(a, b")
    server.service.open(URI, "python", 2, text)
    view = server.service.documents.snapshot(URI)
    completion = Completion(")", OFFSET + 1, Mode.INLINE, "", Status.OFFERED, alternatives=(", 0)",))
    menu = completion_items(server, completion, view)
    assert [item.text_edit.new_text for item in menu.items if item.text_edit] == ["b)", "b, 0)"]
    assert [item.sort_text for item in menu.items] == ["0", "1"]
    assert [item.preselect for item in menu.items] == [True, False]
    assert all(item.filter_text and item.filter_text.startswith("b") for item in menu.items)


async def test_taking_an_alternative_records_the_first_item_passed_over_for_it(tmp_path: Path) -> None:
    server, sink = await _server(tmp_path, inline_suggestions=3, record_feedback=True)
    view = server.service.documents.snapshot(URI)
    result = inline_items(server, ANSWER, view)
    chosen = result.items[2]
    assert chosen.command is not None and chosen.command.arguments
    accepted(server, chosen.command.arguments[0])
    assert len(sink.records) == 1
    record = sink.records[0]
    assert (record["completion"], record["typed"], record["typed_complete"]) == ("b)", "b, 0)", 1)
    assert (record["outcome"], record["reason"], record["how"]) == ("partial", "alternative", "command")
    assert record["matched_chars"] == 1  # "b" is what the two share
    assert sink.accepted == []  # the first item was not accepted


def test_an_alternative_taken_after_its_offer_settled_leaves_the_record_alone() -> None:
    """The editor's edit may come before the command: a two-line alternative settles the
    one-line first item as rejected at once; the command that follows accepts nothing."""
    sink = ListSink()
    tracker = FeedbackTracker(sink)  # type: ignore[arg-type]
    tracker.offered("first", URI, TEXT, OFFSET, "b)", context(), alternatives={"second": "a)\n    pass"})
    tracker.changed(URI, TEXT[:OFFSET] + "a)\n    pass" + TEXT[OFFSET:])
    assert [r["outcome"] for r in sink.records] == ["rejected"]
    assert tracker.accepted("second") is True and sink.accepted == []
    assert tracker.accepted("first") is True and sink.accepted == ["first"]  # the first's id still counts


def test_the_rest_of_an_offer_asked_for_again_gains_the_new_alternatives() -> None:
    sink = ListSink()
    tracker = FeedbackTracker(sink)  # type: ignore[arg-type]
    tracker.offered("first", URI, TEXT, OFFSET, "b)", context())
    typed_b = TEXT[:OFFSET] + "b" + TEXT[OFFSET:]
    tracker.changed(URI, typed_b)
    tracker.offered("again", URI, typed_b, OFFSET + 1, ")", context(), alternatives={"other": ", 0)"})
    assert tracker.accepted("other") is True
    record = sink.records[0]
    assert (record["completion"], record["typed"], record["reason"]) == ("b)", "b, 0)", "alternative")
