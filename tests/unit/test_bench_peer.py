"""`inkling bench-peer`'s pure parts: llama.vim's request and what its client keeps of an
answer, and the execution scoring of held-out holes (CPython's own tests, on a copy)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from lsp_server.bench.peer import llama_vim_line, llama_vim_request, render, summary
from lsp_server.corpora import SourceFile
from lsp_server.evaluation.tasks import make_task, parse_clean
from lsp_server.evaluation.tested_holes import (
    TestedHole,
    _function_body_lines,
    module_and_tests,
    passes,
)
from lsp_server.holes import Hole, HoleKind
from lsp_server.stdlib_tests import run_tests

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _hole(path: Path, key: str, line_text: str, module: str, tests: str) -> TestedHole:
    source = SourceFile("python", path, key, "python-stdlib")
    parsed = parse_clean(source)
    assert parsed is not None
    start = parsed.text.index(line_text)
    code = start + len(line_text) - len(line_text.lstrip())
    task = make_task(source, parsed, Hole(code, start + len(line_text), HoleKind.LINE, "line"))
    assert task is not None
    return TestedHole(task, module, tests)


def _colorsys() -> TestedHole:
    return _hole(
        STDLIB / "colorsys.py",
        "python-stdlib/colorsys.py",
        "    y = 0.30*r + 0.59*g + 0.11*b",
        "colorsys",
        "test.test_colorsys",
    )


def test_the_request_is_llama_vims_for_a_line_of_blanks() -> None:
    hole = _colorsys()
    body = llama_vim_request(hole)
    assert body["prompt"] == "" and body["n_indent"] == 0  # llama.vim starts such a line afresh
    assert body["input_prefix"].endswith("def rgb_to_yiq(r, g, b):\n")
    assert body["input_suffix"].startswith("\n    i = 0.74*(r-y)")
    assert body["input_extra"] == [] and body["n_predict"] == 128 and body["t_max_predict_ms"] == 1000
    assert body["samplers"] == ["top_k", "top_p", "infill"] and body["cache_prompt"] is True


def test_llama_vims_client_keeps_the_first_line_and_drops_repeats() -> None:
    hole = _colorsys()
    assert llama_vim_line(hole, "    y = 0.30*r + 0.59*g + 0.11*b\n    i = 1\n") == hole.expected_line
    assert llama_vim_line(hole, "y = r") == "y = r"  # written without indentation: left so
    assert llama_vim_line(hole, "") == "" and llama_vim_line(hole, "\n\n") == ""
    assert llama_vim_line(hole, "    i = 0.74*(r-y) - 0.27*(b-y)") == ""  # the next line again


def test_holes_are_judged_by_the_modules_own_tests() -> None:
    hole = _colorsys()
    assert module_and_tests(hole_source(hole)) == ("colorsys", "test.test_colorsys")
    assert passes(hole, hole.expected_line)  # unrun: the original line
    assert not passes(hole, "    y = 0")
    assert not passes(hole, "    y = (")  # does not even import
    assert passes(hole, "    y = 0.30*r + 0.59*g + 0.11*b  ")  # trailing blanks aside
    assert passes(hole, "    y = r*0.30 + g*0.59 + b*0.11")  # another way to write it


def test_a_traced_run_says_which_lines_ran() -> None:
    source = STDLIB / "colorsys.py"
    text = source.read_text()
    run = run_tests(source, "colorsys", "test.test_colorsys", text, trace=True)
    assert run.passed and run.shadowed
    line = text[: text.index("    y = 0.30*r")].count("\n") + 1
    assert line in run.executed and line in _function_body_lines(text)
    assert 1 not in _function_body_lines(text)


def test_the_report_renders_both_sides() -> None:
    from lsp_server.bench.peer import Outcome

    ours = [Outcome("x", 100, "x", exact=True, passed=True), Outcome("", 200, "")]
    theirs = [Outcome("y", 50, "y"), Outcome("y", 70, "y")]
    report = {
        "holes": 2,
        "inkling": summary(ours),
        "llama-server": summary(theirs),
        "targets": {"met": False, "exact_match_points": 50.0, "pass_rate_points": 50.0, "p50_ratio": 2.5},
        "load_average_before": (0.5, 0, 0),
        "load_average_after": (0.7, 0, 0),
    }
    text = render(report)
    assert "| exact match (the line as it stands) | 50.0% | 0.0% | +50.0 points |" in text
    assert "| empty answers | 50.0% | 0.0% |" in text and "targets met: no" in text


def hole_source(hole: TestedHole) -> SourceFile:
    return SourceFile("python", Path(hole.task.path), hole.task.key, "python-stdlib")
