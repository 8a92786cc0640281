"""Results files round-trip: written, read back, scored again; the table shows every group."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.errors import InklingError
from lsp_server.evaluation.corpus import directory_corpora
from lsp_server.evaluation.metrics import score
from lsp_server.evaluation.report import (
    TaskResult,
    decisions,
    load_results,
    render_candidates,
    render_findings,
    render_table,
    summaries,
    write_json,
)
from lsp_server.evaluation.runners import Answer
from lsp_server.evaluation.tasks import build_tasks, task_from_record
from lsp_server.languages import language_for_id

SOURCE = """def area(width, height):
    if width < 0 or height < 0:
        raise ValueError("negative")
    return width * height


def perimeter(width, height):
    return 2 * (width + height)


def scale(shape, factor):
    for key in ("width", "height"):
        shape[key] = shape[key] * factor
    return shape
"""


def _results(root: Path) -> list[TaskResult]:
    (root / "shapes.py").write_text(SOURCE)
    tasks = build_tasks(directory_corpora(root, ["python"]), splits=("dev", "test"), per_group=3)
    results = []
    for task in tasks:
        answers = {
            "ours": Answer(task.expected, 10.0, "inline", "finish the line"),
            "baseline": Answer("", 5.0),
        }
        spec = language_for_id(task.language)
        scores = {
            name: score(spec, task.prefix, task.suffix, task.expected, a.text, a.latency_ms)
            for name, a in answers.items()
        }
        results.append(TaskResult(task, "inline", "finish the line", answers, scores))
    return results


def test_a_results_file_reads_back_and_scores_the_same(tmp_path: Path) -> None:
    results = _results(tmp_path)
    out = tmp_path / "results.json"
    write_json(out, {"runners": ["ours", "baseline"]}, results, ["ours", "baseline"])
    _, runners, loaded = load_results(out)
    assert len(loaded) >= 8
    assert runners == ["ours", "baseline"]
    assert [r.task.id for r in loaded] == [r.task.id for r in results]
    assert [r.task.text for r in loaded] == [r.task.text for r in results]
    assert all(r.scores["ours"].exact and r.scores["baseline"].empty for r in loaded)
    summary = summaries(loaded, runners)
    assert summary["ours"]["all"]["exact_match"] == 1.0
    assert summary["baseline"]["all"]["empty_share"] == 1.0
    table = render_table(summary, runners)
    rows = [line.split() for line in table.splitlines()[3:]]
    assert {(row[0], row[1]) for row in rows if row[0] == "python"} == {
        ("python", kind) for kind in ("line", "midline", "block", "span")
    }
    assert "+100.0" in table.splitlines()[-1]  # ours - baseline, exact match, over all tasks
    assert decisions(loaded)["line"]["inline: finish the line"] == sum(
        1 for r in results if r.task.kind == "line"
    )


def test_a_changed_file_is_reported_not_scored_wrongly(tmp_path: Path) -> None:
    task = _results(tmp_path)[0].task
    record = task.record()
    Path(task.path).write_text(SOURCE.replace("width", "w"))
    with pytest.raises(InklingError, match="changed"):
        task_from_record(record)


def test_candidates_read_back_and_count_where_a_perfect_judge_would_win(tmp_path: Path) -> None:
    results = _results(tmp_path)[:3]
    wrong = {"text": "pass", "logprob": -1.0, "tokens": 1, "judged": -9.0, "judged_tokens": 4}
    # Task 0: chosen right; task 1: chosen wrong, the right one among the candidates; task 2: neither.
    for number, result in enumerate(results):
        right = {**wrong, "text": result.task.expected, "logprob": -3.0}
        chosen = result.task.expected if number == 0 else "pass"
        candidates = (wrong, right) if number < 2 else (wrong, wrong)
        answer = Answer(chosen, 10.0, "inline", "finish the line", candidates=candidates)
        spec = language_for_id(result.task.language)
        result.answers["ours"] = answer
        result.scores["ours"] = score(
            spec, result.task.prefix, result.task.suffix, result.task.expected, chosen, 10.0
        )
    out = tmp_path / "results.json"
    write_json(out, {"runners": ["ours", "baseline"]}, results, ["ours", "baseline"])
    _, runners, loaded = load_results(out)
    assert loaded[1].answers["ours"].candidates[1]["text"] == results[1].task.expected
    assert render_candidates(loaded) == (
        "line candidates (ours): 3 blank lines ranked; the chosen line exact in 1, "
        "some candidate exact in 2 (what a perfect judge would reach)"
    )
    assert render_candidates(loaded, "baseline") == ""
    assert render_candidates(loaded) in render_findings(loaded, runners)
