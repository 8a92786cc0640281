"""The benchmark's scoring rules, one by one."""

from __future__ import annotations

import pytest

from lsp_server.evaluation.metrics import (
    adds_no_errors,
    edit_similarity,
    exact_match,
    normalize,
    parses_cleanly,
    percentile,
    repeats_suffix,
    score,
    summarize,
)
from lsp_server.languages import language_for_id

PYTHON = language_for_id("python")
GO = language_for_id("go")


def test_exact_match_ignores_trailing_whitespace_only() -> None:
    assert normalize("x = 1  \n  y = 2\t\n\n") == "x = 1\n  y = 2"
    assert exact_match("return x  \n", "return x")
    assert not exact_match(" return x", "return x")  # leading whitespace counts
    assert not exact_match("", "")  # an empty answer is never a hit
    assert not exact_match("   \n", "x")


def test_edit_similarity_is_the_indel_ratio() -> None:
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("abc", "abd") == pytest.approx(1 - 2 / 6)
    assert edit_similarity("", "abc") == 0.0
    assert edit_similarity("abc  \n", "abc") == 1.0


def test_parses_means_no_new_error_nodes() -> None:
    assert PYTHON is not None
    prefix, suffix = "def f(x):\n    return ", "\n\nprint(f(1))\n"
    assert adds_no_errors(PYTHON, prefix, "x + 1", suffix)
    assert not adds_no_errors(PYTHON, prefix, "x + (1", suffix)
    # A file that already has an error: only new errors count.
    broken = "def g(:\n    pass\n"
    assert adds_no_errors(PYTHON, broken + prefix, "x", suffix)
    assert not parses_cleanly(PYTHON, broken + prefix, "x", suffix)


def test_counting_errors_alone_can_be_fooled_and_clean_cannot() -> None:
    assert GO is not None
    # The hole leaves `var x = ` (one error); `(1` swaps it for a missing `)`.
    assert adds_no_errors(GO, "package p\nvar x = ", "(1", "\n")
    assert not parses_cleanly(GO, "package p\nvar x = ", "(1", "\n")


@pytest.mark.parametrize(
    ("line_prefix", "completion", "suffix", "repeats"),
    [
        ("", "x = 1\nreturn x", "\nreturn x\n", True),  # last line = next non-blank line
        ("  ", "x = 1\n  return x  ", "\n\n  return x\n", True),
        ("  ", "return x", "\n  return x\n", True),  # a line hole: the cursor line's indentation counts
        ("", "x = 1", "\nreturn x\n", False),
        ("    ", "return x", "\nreturn x\n", False),  # same words, another block
        ("", "foo(a, b))", ")\n", True),  # ends with the rest of the line
        ("", "foo(a, b)", ")\n", True),
        ("", "foo(a, b", ")\n", False),
        ("", "if x:", ":  \nnext\n", True),
        ("\t", "body\n}", "\n}\n", True),  # the closing brace is already there
        ("\t", "if x {\n\t\ty()\n\t}", "\n}\n", False),  # a nested block's own brace
        ("\t", "body", "\n}\n", False),
        ("\t", "x()\n}\n\nfunc g() {", "\n}\n", True),  # runs on past the end of the hole
        ("", "", "\nreturn x\n", False),
        ("", "   ", "", False),
    ],
)
def test_repeats_suffix(line_prefix: str, completion: str, suffix: str, repeats: bool) -> None:
    assert repeats_suffix(completion, suffix, line_prefix) is repeats


def test_an_empty_answer_scores_zero_and_is_kept_out_of_the_shares() -> None:
    assert GO is not None
    empty = score(GO, "x := ", "\n", "1", "", 12.0)
    assert (empty.exact, empty.similarity, empty.empty, empty.parses, empty.clean, empty.repeats) == (
        False,
        0.0,
        True,
        None,
        None,
        None,
    )
    hit = score(GO, "package p\nvar x = ", "\n", "1", "1", 30.0)
    broken = score(GO, "package p\n", "\nvar y = 2\n", "var x = 1", "var x = (1", 50.0)
    assert hit.exact and hit.parses and hit.clean and not hit.repeats
    assert not broken.exact and broken.parses is False and broken.clean is False
    summary = summarize([empty, hit, broken])
    assert summary.n == 3
    assert summary.exact_match == pytest.approx(1 / 3)
    assert summary.empty_share == pytest.approx(1 / 3)
    assert summary.parse_share == pytest.approx(1 / 2)  # over the two non-empty answers
    assert summary.clean_share == pytest.approx(1 / 2)
    assert summary.repeat_share == 0.0
    assert summary.latency_p50_ms == 30.0


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile(list(map(float, range(11))), 0.9) == pytest.approx(9.0)
