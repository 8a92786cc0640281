"""Cross-file holes need another file: the name is defined there, not here, and first used at the hole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsp_server.evaluation.corpus import directory_corpora
from lsp_server.evaluation.crossfile import build_crossfile_tasks, repository_symbols
from lsp_server.evaluation.metrics import score
from lsp_server.evaluation.report import (
    TaskResult,
    load_results,
    render_context_use,
    render_table,
    summaries,
    write_json,
)
from lsp_server.evaluation.runners import Answer
from lsp_server.evaluation.tasks import HoleKind, parse_clean, task_from_record
from lsp_server.holes.crossfile import find_uses
from lsp_server.languages import language_for_id

BILLING = '''"""Billing."""

MAX_ITEMS = 50


def compute_total(invoice, tax_rate=0.2):
    """Total with tax."""
    return sum(invoice.amounts) * (1 + tax_rate)


def render(invoice):
    return str(invoice)
'''
REPORT = '''"""Reports."""

from shop import billing
from shop.billing import compute_total


def render(invoice):
    return "report"


def summarize(invoices):
    totals = []
    for invoice in invoices:
        total = compute_total(invoice, tax_rate=0.1)
        totals.append(total)
    if len(totals) > billing.MAX_ITEMS:
        totals = totals[: billing.MAX_ITEMS]
    again = compute_total(invoices[0])
    return render(totals)
'''
LOCAL = '''"""Only its own names: nothing here needs another file of the repository to be completed."""


def double(value):
    return 2 * value


def quadruple(value):
    result = double(value)
    return double(result)
'''
GO_A = """package shapes

// Square is a side length.
type Square struct {
	Side int
}

func (s Square) Area() int {
	return s.Side * s.Side
}

func Double(x int) int {
	return 2 * x
}
"""
GO_B = """// Package shapes describes shapes; this file uses what square.go defines.
package shapes

import "strings"

func Describe(s Square) string {
	area := s.Area()
	twice := Double(area)
	return strings.Repeat("#", twice)
}
"""


def _repository(root: Path) -> Path:
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "__init__.py").write_text('"""The shop."""\n')
    (root / "shop" / "billing.py").write_text(BILLING)
    (root / "shop" / "report.py").write_text(REPORT)
    (root / "shop" / "local.py").write_text(LOCAL)
    (root / "shapes").mkdir()
    (root / "shapes" / "square.go").write_text(GO_A)
    (root / "shapes" / "describe.go").write_text(GO_B)
    return root


def _uses(root: Path, language: str, name: str) -> list[tuple[str, str, str]]:
    repo = directory_corpora(root, [language])[0]
    source = next(f for f in repo.files if f.path.name == name)
    file = parse_clean(source)
    assert file is not None
    uses = find_uses(file, str(source.path), repository_symbols(repo))
    return [(u.name, u.usage, Path(u.defined_in).name) for u in uses]


def test_a_name_defined_in_another_file_is_a_use_only_where_it_first_appears(tmp_path: Path) -> None:
    uses = _uses(_repository(tmp_path), "python", "report.py")
    # compute_total only once (the second call can copy the first); billing.MAX_ITEMS as an attribute
    # of the module that defines it; `render` is defined here too, so it needs no other file.
    assert uses == [("compute_total", "call", "billing.py"), ("MAX_ITEMS", "attribute", "billing.py")]


def test_a_file_that_uses_only_its_own_names_has_no_cross_file_use(tmp_path: Path) -> None:
    assert _uses(_repository(tmp_path), "python", "local.py") == []


def test_go_uses_reach_sibling_files_of_the_package_but_not_imported_packages(tmp_path: Path) -> None:
    uses = _uses(_repository(tmp_path), "go", "describe.go")
    assert ("Square", "name", "square.go") in uses
    assert ("Area", "call", "square.go") in uses
    assert ("Double", "call", "square.go") in uses
    assert all(name != "Repeat" for name, _, _ in uses)


def test_tasks_remove_a_line_or_its_rest_that_uses_the_other_file(tmp_path: Path) -> None:
    root = _repository(tmp_path)
    tasks = build_crossfile_tasks(
        directory_corpora(root, ["python", "go"]), splits=("dev", "test"), per_file=5
    )
    assert tasks
    for task in tasks:
        assert task.kind is HoleKind.CROSSFILE
        assert task.repository == str(root.resolve())
        original = Path(task.path).read_text()
        assert task.prefix + task.expected + task.suffix == original
        assert "\n" not in task.expected
        assert task.names[0] in task.expected
        code = [line for line in task.prefix.split("\n") if not line.startswith(("from ", "import "))]
        assert task.names[0] not in "\n".join(code)  # first use, imports aside
        assert Path(task.path).name not in ("local.py", "billing.py", "square.go")
        assert task.definition in ("shop/billing.py", "shapes/square.go")
        assert task.detail.split("/")[0] in ("line", "midline")
    expected = {t.expected.strip() for t in tasks}
    assert any("compute_total(invoice, tax_rate=0.1)" in e for e in expected)
    assert any("twice := Double(area)".endswith(e) for e in expected)
    # seeded: the same tasks every time
    again = build_crossfile_tasks(
        directory_corpora(root, ["python", "go"]), splits=("dev", "test"), per_file=5
    )
    assert [t.id for t in again] == [t.id for t in tasks]


def test_results_read_back_with_the_repository_and_the_table_compares_project_with_in_file(
    tmp_path: Path,
) -> None:
    root = _repository(tmp_path)
    tasks = build_crossfile_tasks(directory_corpora(root, ["python"]), splits=("dev", "test"), per_file=5)
    assert task_from_record(json.loads(json.dumps(tasks[0].record()))) == tasks[0]
    results = []
    for task in tasks:
        answers = {
            "in-file": Answer("", 10.0),
            "project": Answer(
                task.expected, 20.0, context_files=("shop/billing.py",), definition_in_context=True
            ),
        }
        spec = language_for_id(task.language)
        scores = {
            name: score(spec, task.prefix, task.suffix, task.expected, a.text, a.latency_ms)
            for name, a in answers.items()
        }
        results.append(TaskResult(task, "inline", "finish the line", answers, scores))
    out = tmp_path / "results.json"
    write_json(out, {"runners": ["in-file", "project"]}, results, ["in-file", "project"])
    _, runners, loaded = load_results(out)
    assert [r.task for r in loaded] == tasks
    assert loaded[0].answers["project"].context_files == ("shop/billing.py",)
    table = render_table(summaries(loaded, runners), runners)
    assert "Δ = project - in-file" in table
    assert {"crossfile-line", "crossfile-midline"} >= set(summaries(loaded, runners)["project"]["by_kind"])
    assert "+100.0" in table
    assert f"{len(tasks)}/{len(tasks)} prompts" in render_context_use(loaded)


def test_context_only_counts_the_tasks_whose_definition_reaches_the_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lsp_server.cli import main

    root = _repository(tmp_path / "repo")
    out = tmp_path / "context.json"
    argv = ["eval", "--track", "crossfile", "--lang", "python,go", "--source", str(root), "--split", "both"]
    argv += ["--context-only", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    document = json.loads(out.read_text())
    tasks = document["tasks"]
    summary = document["summary"]
    assert tasks and summary["tasks"] == len(tasks) and summary["definition_in_context"] == len(tasks)
    assert summary["answer_shown"] == sum(t["answer_shown"] for t in tasks)
    assert {t["definition"] for t in tasks} == {"shop/billing.py", "shapes/square.go"}
    assert all(t["found"] and t["definition"] in t["context_files"] for t in tasks)
    assert f"| all | {len(tasks)} | {len(tasks)} (100.0%)" in capsys.readouterr().out
    # With project context off nothing reaches the prompt, and the count says so.
    assert main([*argv, "--context-tokens", "0"]) == 0
    off = json.loads(out.read_text())["summary"]
    assert off["definition_in_context"] == 0 and off["answer_shown"] == 0
