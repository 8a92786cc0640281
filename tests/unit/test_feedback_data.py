"""Feedback records -> SFT examples and preference pairs (training/feedback_data.py), no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lsp_server.feedback import COLUMN_NAMES, FeedbackStore
from training.config import ConfigError
from training.feedback_data import COLUMNS, FeedbackPairsConfig, build, read_records


def record(item: str, outcome: str, completion: str, typed: str = "", **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(COLUMN_NAMES, "")
    values.update(
        item=item,
        outcome=outcome,
        completion=completion,
        typed=typed,
        typed_complete=True,
        matched_chars=0,
        language="python",
        file="app.py",
        prompt_order="spm",
        prefix="def area(w, h):\n    return ",
        suffix="\n\nprint(area(2, 3))\n",
        settings={},
    )
    values.update(changes)
    return values


def test_accepted_become_examples_and_rejected_become_pairs() -> None:
    built = build(
        [
            record("a", "accepted", "w * h", "w * h"),
            record("b", "rejected", "0", "w*h"),
            record("c", "partial", "w + h", "w * h", matched_chars=2),
            record("d", "rejected", "None", "", reason="closed", typed_complete=False),
        ],
        FeedbackPairsConfig(),
    )
    [example] = built["splits"]["train"]
    assert set(example) == set(COLUMNS)
    # The prefix's trailing space moves into the middle, as in every training example.
    assert example["prefix"].endswith("return") and example["middle"] == " w * h"
    assert (example["kind"], example["hole"], example["order"]) == ("fim", "feedback", "spm")
    pairs = {(p["chosen"], p["rejected"]): p["chosen_source"] for p in built["pairs"]}
    assert pairs == {
        (" w*h", " 0"): "typed",
        (" w * h", " w + h"): "typed",
        (" w * h", " 0"): "accepted",  # accepted over another completion for the same context
        (" w * h", " None"): "accepted",
    }
    assert built["outcomes"] == {"accepted": 1, "rejected": 2, "partial": 1}
    # The partial one's pair came twice: from what was typed, and from the accepted one.
    assert built["skipped"] == {"rejected: nothing typed instead": 1, "duplicate pair": 1}


def test_options_typed_examples_empty_chosen_order_and_splits() -> None:
    records = [
        record("a", "rejected", "pass", "", reason="diverged"),  # Enter at once: nothing wanted
        record("b", "rejected", "0", "w*h", prefix="x = ", file="b.py", prompt_order="prefix"),
        *(record(f"c{n}", "accepted", f"{n}", prefix=f"y{n} = ", file=f"f{n}.py") for n in range(20)),
    ]
    built = build(records, FeedbackPairsConfig(empty_chosen=False, sft_from_typed=True, validation_share=0.3))
    assert all(p["chosen"] for p in built["pairs"]) and built["skipped"]["empty chosen"] == 1
    rows = built["splits"]["train"] + built["splits"]["validation"]
    assert any(r["middle"] == " w*h" and r["order"] == "spm" for r in rows)  # prefix-only prompts: spm
    assert built["splits"]["validation"] and built["splits"]["train"]
    files = {r["path"] for r in built["splits"]["validation"]}
    assert not files & {r["path"] for r in built["splits"]["train"]}  # split by file
    one_file = build(
        [record(f"d{n}", "accepted", f"{n}", prefix=f"z{n} = ") for n in range(10)], FeedbackPairsConfig()
    )
    assert len(one_file["splits"]["validation"]) == 1 and len(one_file["splits"]["train"]) == 9
    psm = build(records, FeedbackPairsConfig(order="psm"))
    assert {r["order"] for r in psm["splits"]["train"]} == {"psm"}
    with pytest.raises(ConfigError):
        FeedbackPairsConfig(order="prefix")


def test_records_are_scrubbed_again() -> None:
    built = build(
        [record("a", "rejected", "send()", 'send("bob@corp.io")', suffix="KEY = 'AKIAABCDEFGHIJKLMNOP'\n")],
        FeedbackPairsConfig(),
    )
    flat = json.dumps(built["pairs"])
    assert "bob@corp.io" not in flat and "AKIA" not in flat


def test_records_read_from_a_database_or_an_export(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    stored = record("a", "accepted", "x")
    stored["settings"] = "{}"
    store.add([stored])
    store.close()
    assert [r["item"] for r in read_records(str(tmp_path / "feedback.sqlite3"))] == ["a"]
    exported = tmp_path / "feedback.jsonl"
    exported.write_text(json.dumps(record("b", "rejected", "y")) + "\n\n")
    assert [r["item"] for r in read_records(str(exported))] == ["b"]
    exported.write_text('{"not": "feedback"}\n')
    with pytest.raises(ConfigError, match="not a feedback record"):
        list(read_records(str(exported)))
    with pytest.raises(ConfigError, match="no feedback at"):
        list(read_records(str(tmp_path / "missing.jsonl")))
