"""`inkling eval --track exec`: holes in functions CPython's tests exercise, answers judged by
running those tests with the answer at the cursor; pass@1 beside exact match and similarity."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from lsp_server.corpora import SourceFile, standard_corpora
from lsp_server.errors import InklingError
from lsp_server.evaluation import exec_track, tested_holes
from lsp_server.evaluation.exec_track import check_options, judge, judge_results
from lsp_server.evaluation.metrics import score
from lsp_server.evaluation.report import TaskResult, load_results, render_table, summaries, write_json
from lsp_server.evaluation.runners import Answer
from lsp_server.evaluation.tasks import make_task, parse_clean
from lsp_server.evaluation.tested_holes import (
    TestedHole,
    choose_holes,
    exec_selection,
    split_sources,
)
from lsp_server.evaluation.tested_holes import (
    tested_holes as bench_peer_holes,
)
from lsp_server.holes import Hole, HoleKind
from lsp_server.holes.tokens import block_holes
from lsp_server.languages import language_for_id
from lsp_server.stdlib_tests import _LOOPBACK_UP, TestRun, sandbox_prefix

STDLIB = Path(sysconfig.get_paths()["stdlib"])
LINE, BLOCK = HoleKind.LINE, HoleKind.BLOCK


def _colorsys() -> SourceFile:
    return SourceFile("python", STDLIB / "colorsys.py", "python-stdlib/colorsys.py", "python-stdlib")


def _hole(kind: HoleKind, code: str) -> TestedHole:
    """A colorsys hole of `kind` whose text starts with `code` (no tests run)."""
    source = _colorsys()
    parsed = parse_clean(source)
    assert parsed is not None
    if kind is LINE:
        start = parsed.text.index(code)
        end = parsed.text.index("\n", start)
        task = make_task(source, parsed, Hole(start, end, LINE, "line"))
    else:
        (hole,) = [h for h in block_holes(parsed) if parsed.text[h.start :].startswith(code)]
        task = make_task(source, parsed, hole)
    assert task is not None
    return TestedHole(task, "colorsys", "test.test_colorsys")


LINE_HOLE = "y = 0.30*r + 0.59*g + 0.11*b"
BLOCK_HOLE = "if s == 0.0:\n        return l, l, l\n    if l <= 0.5:"  # hls_to_rgb's body


def test_an_answer_is_inserted_at_the_cursor_as_the_metrics_see_it() -> None:
    for hole in (_hole(LINE, LINE_HOLE), _hole(BLOCK, BLOCK_HOLE)):
        task = hole.task
        assert hole.fill("x") == task.text[: task.offset] + "x" + task.text[task.offset :]
        assert hole.fill(task.expected) == (STDLIB / "colorsys.py").read_text()
    block = _hole(BLOCK, BLOCK_HOLE)
    assert block.task.kind is BLOCK and block.task.expected.count("\n") >= 3
    # `pass` at the cursor is the body replaced at its indentation: what choosing checks.
    assert "def hls_to_rgb(h, l, s):\n    pass\n\ndef _v(" in block.fill("pass")


def test_exact_and_empty_answers_are_decided_without_running_the_tests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_run(*args: object, **kwargs: object) -> TestRun:
        raise AssertionError("ran the tests")

    monkeypatch.setattr(exec_track, "run_tests", no_run)
    hole = _hole(BLOCK, BLOCK_HOLE)
    assert judge(hole, hole.task.expected) == exec_track.Verdict(True, ran=False)
    assert judge(hole, hole.task.expected.replace("\n", "  \n") + "\n\n").passed  # trailing blanks
    assert judge(hole, "") == exec_track.Verdict(False, ran=False)
    assert judge(hole, " \n\t") == exec_track.Verdict(False, ran=False)
    runs: list[str] = []

    def one_run(path: Path, module: str, tests: str, text: str, **_: object) -> TestRun:
        runs.append(text)
        return TestRun(True, 1.5)

    monkeypatch.setattr(exec_track, "run_tests", one_run)
    assert judge(hole, "return 1") == exec_track.Verdict(True, ran=True, seconds=1.5)
    assert runs == [hole.fill("return 1")]


def test_results_get_pass_at_1_per_runner_and_kind_and_keep_it_when_rescored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holes = [_hole(LINE, LINE_HOLE), _hole(BLOCK, BLOCK_HOLE)]
    runs: list[str] = []

    def fake_run(path: Path, module: str, tests: str, text: str, **_: object) -> TestRun:
        runs.append(text)
        return TestRun("WRONG" not in text, 0.5)

    monkeypatch.setattr(exec_track, "run_tests", fake_run)
    spec = language_for_id("python")
    results = []
    for hole in holes:
        task = hole.task
        answers = {"ours": Answer(task.expected, 10.0), "baseline": Answer("WRONG = 1", 5.0)}
        if task.kind is LINE:
            answers["ours"] = Answer("y = 0.3*r + 0.59*g + 0.11*b", 10.0)  # not exact: run, passes
            answers["baseline"] = Answer("y = 0.3*r + 0.59*g + 0.11*b", 5.0)  # the same text: one run
        scores = {
            name: score(spec, task.prefix, task.suffix, task.expected, a.text, a.latency_ms)
            for name, a in answers.items()
        }
        results.append(TaskResult(task, "inline", "", answers, scores))
    meta: dict[str, object] = {"runners": ["ours", "baseline"]}
    judged = judge_results(results, {h.task.id: h for h in holes}, show_progress=False, meta=meta)
    assert len(runs) == 2 and meta["exec"] == {"test_runs": 2, "test_seconds": 1.0}
    assert [(r.scores["ours"].passed, r.scores["baseline"].passed) for r in judged] == [
        (True, True),
        (True, False),
    ]
    summary = summaries(judged, ["ours", "baseline"])
    assert summary["ours"]["all"]["pass_at_1"] == 1.0 and summary["baseline"]["all"]["pass_at_1"] == 0.5
    assert summary["baseline"]["by_kind"]["block"]["pass_at_1"] == 0.0
    table = render_table(summary, ["ours", "baseline"])
    header = table.splitlines()[1].split()
    assert header[3:8] == ["EM%", "Δ", "ES%", "Δ", "pass@1%"]
    overall = table.splitlines()[-1].split()
    assert (
        overall[header.index("pass@1%")] == "100.0/50.0" and overall[header.index("pass@1%") + 1] == "+50.0"
    )

    out = tmp_path / "exec.json"
    write_json(out, meta, judged, ["ours", "baseline"])
    record = json.loads(out.read_text())["tasks"][1]
    assert (record["module"], record["tests"]) == ("colorsys", "test.test_colorsys")
    assert record["answers"]["baseline"]["score"]["passed"] is False
    _, runners, loaded = load_results(out)  # --rescore: stored pass flags kept, nothing run
    assert [r.scores[n].passed for r in loaded for n in runners] == [True, True, True, False]
    assert loaded[1].extra == {"module": "colorsys", "tests": "test.test_colorsys"}
    assert len(runs) == 2


def test_the_fim_track_s_table_has_no_pass_column() -> None:
    hole = _hole(LINE, LINE_HOLE)
    task = hole.task
    spec = language_for_id("python")
    scores = {"ours": score(spec, task.prefix, task.suffix, task.expected, task.expected, 1.0)}
    summary = summaries(
        [TaskResult(task, "inline", "", {"ours": Answer(task.expected, 1.0)}, scores)], ["ours"]
    )
    assert summary["ours"]["all"]["pass_at_1"] is None
    assert "pass@1" not in render_table(summary, ["ours"])


def test_each_split_is_its_own_files_in_a_seeded_order() -> None:
    dev, test = split_sources(0, "dev"), split_sources(0, "test")
    assert dev and test and not {s.key for s in dev} & {s.key for s in test}
    assert {s.split for s in dev} == {"dev"} and {s.split for s in test} == {"test"}
    assert len(test) < len(dev)  # a quarter held out
    # The test split in the order bench-peer's holes were first chosen in.
    (corpus,) = standard_corpora("python")
    first_order = [source for source in corpus.files if source.split == "test"]
    random.Random("tested-holes:0").shuffle(first_order)
    assert test == first_order


def _store(path: Path, stamp: dict[str, object], holes: list[TestedHole], exhausted: object) -> None:
    body = {**stamp, "exhausted": exhausted, "holes": [h.record() for h in holes]}
    path.write_text(json.dumps(body))


def test_a_selection_is_cached_per_split_and_kinds_with_a_version_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line, block = _hole(LINE, LINE_HOLE), _hole(BLOCK, BLOCK_HOLE)
    calls: list[tuple[int, str, tuple[HoleKind, ...]]] = []

    def choose(count: int, *, split: str, kinds: tuple[HoleKind, ...], **_: object) -> list[TestedHole]:
        calls.append((count, split, tuple(kinds)))
        return [h for h in (line, block) if h.task.kind in kinds]

    monkeypatch.setattr(tested_holes, "choose_holes", choose)
    monkeypatch.setenv("INKLING_CACHE", str(tmp_path))
    # Kinds in any order: one selection, one file, line holes first.
    assert exec_selection(1, split="dev", kinds=(BLOCK, LINE)) == [line, block]
    (path,) = (tmp_path / "eval").iterdir()
    assert path.name == f"exec-holes-py{sys.version_info[0]}.{sys.version_info[1]}-seed0-dev-line+block.json"
    stored = json.loads(path.read_text())
    assert stored["version"] == tested_holes.EXEC_SELECTION_VERSION and stored["split"] == "dev"
    assert stored["kinds"] == ["line", "block"] and stored["exhausted"] == []
    assert exec_selection(1, split="dev", kinds=(LINE, BLOCK)) == [line, block]
    assert len(calls) == 1  # from the cache
    # Each of these is another selection, or asks for more than is stored: chosen again.
    exec_selection(1, split="test", kinds=(LINE, BLOCK))
    exec_selection(1, split="dev", kinds=(LINE,))
    exec_selection(2, split="dev", kinds=(LINE, BLOCK))
    assert [c[1:] for c in calls[1:]] == [("test", (LINE, BLOCK)), ("dev", (LINE,)), ("dev", (LINE, BLOCK))]
    # That last choice found one of each: the split ran out, so asking for 2 again reads the file.
    assert json.loads(path.read_text())["exhausted"] == ["line", "block"]
    exec_selection(2, split="dev", kinds=(LINE, BLOCK))
    assert len(calls) == 4
    monkeypatch.setattr(tested_holes, "EXEC_SELECTION_VERSION", tested_holes.EXEC_SELECTION_VERSION + 1)
    exec_selection(1, split="dev", kinds=(LINE, BLOCK))
    assert len(calls) == 5


def test_bench_peers_selection_keeps_its_file_and_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written before there were kinds and splits (`exhausted` a boolean) still serves."""
    monkeypatch.setattr(tested_holes, "choose_holes", lambda *a, **k: pytest.fail("chose again"))
    line = _hole(LINE, LINE_HOLE)
    path = tmp_path / "tested-holes.json"
    stamp = {"version": tested_holes.SELECTION_VERSION, "python": sys.version.split()[0], "seed": 0}
    _store(path, stamp, [line], exhausted=False)
    assert bench_peer_holes(1, cache=path) == [line]
    _store(path, stamp, [line], exhausted=True)
    assert bench_peer_holes(5, cache=path) == [line]


def test_the_track_is_python_line_and_block_holes_of_the_standard_library(tmp_path: Path) -> None:
    check_options(["python"], [LINE, BLOCK], [])
    with pytest.raises(InklingError, match="Python only"):
        check_options(["python", "go"], [LINE], [])
    with pytest.raises(InklingError, match="no midline holes"):
        check_options(["python"], [LINE, HoleKind.MIDLINE], [])
    with pytest.raises(InklingError, match="--source"):
        check_options(["python"], [LINE], [tmp_path])
    with pytest.raises(ValueError, match="span"):
        choose_holes(1, kinds=(HoleKind.SPAN,), sources=[])


def test_the_command_rejects_other_languages_before_choosing(capsys: pytest.CaptureFixture[str]) -> None:
    from lsp_server.cli import main

    assert main(["eval", "--track", "exec", "--lang", "go", "--tasks-only", "--no-progress"]) == 2
    assert "Python only" in capsys.readouterr().err


# -- for real: CPython's own tests, run ---------------------------------------------------------


def test_holes_chosen_from_a_real_module_are_judged_by_its_tests() -> None:
    """About a second: colorsys's tests are quick."""
    holes = choose_holes(1, kinds=(LINE, BLOCK), sources=[_colorsys()])
    assert [h.task.kind for h in holes] == [LINE, BLOCK]
    for hole in holes:
        assert (hole.module, hole.tests) == ("colorsys", "test.test_colorsys")
        assert hole.task.split == "dev"  # colorsys.py is a dev file
        indentation = hole.task.text[hole.line_start : hole.task.offset]
        assert judge(hole, hole.task.expected) == exec_track.Verdict(True, ran=False)
        wrong = judge(hole, "pass")  # what choosing it checked the tests notice
        assert wrong.ran and not wrong.passed
        # The right code behind a no-op statement: not exact, so it runs, and passes.
        right = judge(hole, f"pass\n{indentation}{hole.task.expected}")
        assert right.ran and right.passed
        assert not judge(hole, "return (").passed  # does not even import


@pytest.mark.skipif(not sandbox_prefix(), reason="no network namespace can be made on this machine")
def test_tests_run_in_a_network_namespace_with_only_a_loopback() -> None:
    probe = (
        "import socket\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "socket.create_connection(server.getsockname(), timeout=5).close()\n"
        "print(sorted(name for _, name in socket.if_nameindex()))\n"
    )
    command = [*sandbox_prefix(), sys.executable, "-I", "-c", _LOOPBACK_UP, "-I", "-c", probe]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['lo']"
