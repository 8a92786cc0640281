"""Judging samples with the server's own parse and stop rules."""

from __future__ import annotations

from training.judge import judge
from training.pairs import choose_pair

PREFIX = "def add(a, b):\n    total ="
SUFFIX = "\n    return total\n\n\nprint(add(1, 2))\n"
MIDDLE = " a + b"


def test_a_sample_equal_to_the_truth_up_to_whitespace_is_good() -> None:
    verdict = judge(" a  +  b", PREFIX, MIDDLE, SUFFIX, "python")
    assert verdict.matches and verdict.good and not verdict.bad


def test_a_sample_that_breaks_the_parse_is_bad() -> None:
    verdict = judge(" a + (b", PREFIX, MIDDLE, SUFFIX, "python")
    assert verdict.breaks_parse and verdict.bad and verdict.reasons == ["breaks_parse"]


def test_a_sample_that_repeats_the_suffix_or_runs_past_the_line_is_bad() -> None:
    verdict = judge(" a + b\n    return total", PREFIX, MIDDLE, SUFFIX, "python")
    assert verdict.repeats_suffix and verdict.runs_past and verdict.bad


def test_a_plausible_different_sample_is_neither_good_nor_bad() -> None:
    verdict = judge(" b + a", PREFIX, MIDDLE, SUFFIX, "python")
    assert not verdict.good and not verdict.bad


def test_block_samples_may_span_lines_but_not_leave_the_block() -> None:
    prefix = "def area(w, h):\n"
    suffix = "\n\n\ndef other():\n    pass\n"
    middle = "    result = w * h\n    return result"
    inside = judge("    return w * h", prefix, middle, suffix, "python")
    assert not inside.bad
    past = judge("    return w * h\n\ndef extra():\n    return 1", prefix, middle, suffix, "python")
    assert past.runs_past and past.bad
    assert judge("   ", prefix, middle, suffix, "python").empty


def test_pairs_prefer_a_matching_sample_then_the_truth() -> None:
    row = {"middle": MIDDLE}
    good = judge(" a + b", PREFIX, MIDDLE, SUFFIX, "python")
    bad = judge(" a + (b", PREFIX, MIDDLE, SUFFIX, "python")
    unknown = judge(" b + a", PREFIX, MIDDLE, SUFFIX, "python")
    assert choose_pair(row, [unknown, bad, good]) == (" a + b", "sample", " a + (b", ["breaks_parse"])
    assert choose_pair(row, [unknown, bad]) == (MIDDLE, "truth", " a + (b", ["breaks_parse"])
    assert choose_pair(row, [unknown, good]) is None
