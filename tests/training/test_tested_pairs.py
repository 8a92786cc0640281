"""Pairs on tested holes: samples cut as the server cuts them, judged by CPython's own tests."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from training.config import ConfigError
from training.judge import as_served, judge
from training.tested_pairs import judge_with_tests, load_tested_holes, pairs_of_hole

STDLIB = Path(sysconfig.get_paths()["stdlib"])
COLORSYS = STDLIB / "colorsys.py"
LINE = "    maxc = max(r, g, b)\n"


def _record(kind: str, start: int, end: int, path: Path = COLORSYS, split: str = "dev") -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    return {
        "id": f"{kind}-{start}",
        "kind": kind,
        "split": split,
        "path": str(path),
        "key": f"python-stdlib/{path.name}",
        "hole_start": start,
        "hole_end": end,
        "expected": text[start:end],
        "module": "colorsys",
        "tests": "test.test_colorsys",
    }


def _selection(tmp_path: Path, records: list[dict[str, Any]], split: str = "dev") -> Path:
    path = tmp_path / "holes.json"
    path.write_text(json.dumps({"split": split, "holes": records}), encoding="utf-8")
    return path


def _line_hole() -> dict[str, Any]:
    """The first `maxc = max(r, g, b)` of colorsys (rgb_to_hsv): the cursor after its indentation."""
    text = COLORSYS.read_text(encoding="utf-8")
    start = text.index(LINE) + 4
    return _record("line", start, start + len(LINE) - 5)


def test_holes_become_training_rows_with_the_kinds_taking_turns(tmp_path: Path) -> None:
    text = COLORSYS.read_text(encoding="utf-8")
    records = [_record("line", 100 + i, 110 + i) for i in range(3)] + [_record("block", 200, 230)]
    rows = load_tested_holes(_selection(tmp_path, records), count=3, seed=0)
    assert [row["hole"] for row in rows].count("block") == 1  # one of each kind before a second line
    assert [row["hole"] for row in rows][:2] in (["line", "block"], ["block", "line"])
    for row in rows:
        assert row["prefix"] + row["middle"] + row["suffix"] == text
        assert row["path"] == "python-stdlib/colorsys.py" and row["module"] == "colorsys"


def test_the_test_split_never_trains(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="only dev holes train"):
        load_tested_holes(_selection(tmp_path, [_line_hole()], split="test"), count=1, seed=0)


def test_a_file_changed_since_the_holes_were_chosen_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "colorsys.py"
    copy.write_text(COLORSYS.read_text(encoding="utf-8"), encoding="utf-8")
    record = _record("line", 100, 110, path=copy)
    copy.write_text("x = 1\n" + COLORSYS.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ConfigError, match="changed since"):
        load_tested_holes(_selection(tmp_path, [record]), count=1, seed=0)


def test_a_sample_that_runs_on_is_judged_as_the_server_would_show_it() -> None:
    prefix, suffix = "def f(r, g, b):\n    ", "\n    return maxc\n"
    served = as_served("maxc = max(r, g, b)\n    minc = 0\n    return", prefix, suffix, "python")
    assert served == "maxc = max(r, g, b)"
    assert judge(served, prefix, "maxc = max(r, g, b)", suffix, "python").matches


def test_every_distinct_failing_sample_pairs_with_a_passing_one() -> None:
    row = {"prefix": "p", "middle": "truth", "suffix": "s"}
    verdicts = [
        judge("", "x = ", "1", "\n", "python"),  # empty: bad
        judge("2", "x = ", "1", "\n", "python"),  # unknown until tested
        judge("1", "x = ", "1", "\n", "python"),  # matches: good
        judge("", "x = ", "1", "\n", "python"),  # the same failure again
    ]
    pairs = pairs_of_hole(row, verdicts)
    assert [(pair["chosen"], pair["chosen_source"], pair["rejected"]) for pair in pairs] == [
        ("1", "sample", "")
    ]


def test_without_a_passing_sample_the_truth_is_chosen_and_without_a_failure_nothing() -> None:
    row = {"prefix": "p", "middle": "truth", "suffix": "s"}
    empty = judge("", "x = ", "1", "\n", "python")
    assert [pair["chosen_source"] for pair in pairs_of_hole(row, [empty])] == ["truth"]
    assert pairs_of_hole(row, [judge("1", "x = ", "1", "\n", "python")]) == []


def test_the_tests_judge_what_the_server_rules_cannot(tmp_path: Path) -> None:
    """Real runs of test.test_colorsys on a copy: a wrong but well-formed line fails them,
    a different line that computes the same passes."""
    (row,) = load_tested_holes(_selection(tmp_path, [_line_hole()]), count=1, seed=0)
    wrong = judge_with_tests(row, "maxc = min(r, g, b)", timeout=60)
    assert wrong.tests_pass is False and wrong.bad and wrong.reasons == ["tests_fail"]
    same = judge_with_tests(row, "maxc = max(b, g, r)", timeout=60)
    assert same.tests_pass is True and same.good
    exact = judge_with_tests(row, "maxc = max(r, g, b)", timeout=60)
    assert exact.matches and exact.tests_pass is None  # the truth needs no run
