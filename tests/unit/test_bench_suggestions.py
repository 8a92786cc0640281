"""The figures `python -m lsp_server.bench.suggestions` reports, from made-up answers."""

from __future__ import annotations

from lsp_server.bench.suggestions import Measured, render, summary


def test_exact_at_k_counts_the_expected_text_among_the_first_k_items() -> None:
    results = [
        Measured("a", "line", "x = 1\n", ("x = 1",), ("x = 1", "x = 2"), 100.0, 150.0),
        Measured("b", "line", "y = 2", ("y = 3",), ("y = 3", "y = 4", "y = 2"), 200.0, 300.0),
        Measured("c", "line", "z", ("q",), ("w", "z"), 300.0, 450.0),
    ]
    figures = summary(results, 3)
    assert figures["automatic_exact_at_1"] == 1 / 3
    assert [figures[f"explicit_exact_at_{k}"] for k in (1, 2, 3)] == [1 / 3, 2 / 3, 1.0]
    assert figures["first_is_automatic"] == 2 / 3
    assert figures["explicit_items"] == 7 / 3
    assert figures["automatic_ms"]["p50"] == 200.0 and figures["explicit_ms"]["p50"] == 300.0
    table = render({"line": figures}, 3)
    assert "@3" in table.splitlines()[0] and "100.0%" in table.splitlines()[1]
