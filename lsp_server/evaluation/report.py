"""Results -> JSON (every task, inspectable), a table for the terminal, a bar chart."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.evaluation.metrics import Score, exact_match, score, summarize
from lsp_server.evaluation.runners import Answer
from lsp_server.evaluation.tasks import HoleKind, Task
from lsp_server.languages import language_for_id


@dataclass(frozen=True)
class TaskResult:
    task: Task
    mode: str
    """context.py's decision at the cursor (what the server would do)."""
    reason: str
    answers: dict[str, Answer]
    scores: dict[str, Score]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """More about the task for the JSON (the exec track: the module and its tests' names)."""

    def record(self) -> dict[str, Any]:
        return {
            **self.task.record(),
            **self.extra,
            "mode": self.mode,
            "reason": self.reason,
            "answers": {
                name: {**answer.as_dict(), **{"score": self.scores[name].as_dict()}}
                for name, answer in self.answers.items()
            },
        }


EXTRA_FIELDS = ("module", "tests")
"""Task fields a track adds (`TaskResult.extra`), read back with the results."""


def score_answer(task: Task, answer: Answer) -> Score:
    """An answer scored against its task: the one call the run and the rescore share."""
    return score(
        language_for_id(task.language),
        task.prefix,
        task.suffix,
        task.expected,
        answer.text,
        answer.latency_ms,
        answer.error,
    )


def load_results(path: Path) -> tuple[dict[str, Any], list[str], list[TaskResult]]:
    """A results file read back, every answer scored again by the current metrics. Whether an
    answer passed its tests (the exec track) is kept as stored: the tests are not run again."""
    from lsp_server.errors import InklingError
    from lsp_server.evaluation.tasks import task_from_record

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        runners: list[str] = document["meta"]["runners"]
    except (OSError, ValueError, KeyError) as exc:
        raise InklingError(f"{path} is not a results file of `inkling eval`: {exc}") from exc
    results = []
    for record in document["tasks"]:
        task = task_from_record(record)
        answers: dict[str, Answer] = {}
        scores: dict[str, Score] = {}
        for name, stored in record["answers"].items():
            fields = {k: v for k, v in stored.items() if k != "score"}
            answer = Answer(
                **{
                    **fields,
                    "steps": tuple(fields.get("steps", ())),
                    "context_files": tuple(fields.get("context_files", ())),
                    "candidates": tuple(fields.get("candidates", ())),
                }
            )
            answers[name] = answer
            scores[name] = dataclasses.replace(
                score_answer(task, answer), passed=stored.get("score", {}).get("passed")
            )
        extra = {key: record[key] for key in EXTRA_FIELDS if key in record}
        results.append(TaskResult(task, record["mode"], record["reason"], answers, scores, extra))
    return document["meta"], runners, results


def kind_label(task: Task) -> str:
    """The hole kind a table row shows; cross-file holes by where the cursor is (line, midline)."""
    if task.kind is HoleKind.CROSSFILE:
        return f"{task.kind.value}-{task.detail.split('/')[0]}"
    return task.kind.value


def group_key(task: Task) -> tuple[str, str]:
    return task.language, kind_label(task)


def summaries(results: Sequence[TaskResult], runners: Sequence[str]) -> dict[str, Any]:
    """Per runner: by (language, kind), by kind, by language, and over everything."""

    def collect(name: str, key: Callable[[TaskResult], str]) -> dict[str, dict[str, Any]]:
        groups: dict[str, list[Score]] = {}
        for result in results:
            groups.setdefault(key(result), []).append(result.scores[name])
        return {group: summarize(scores).as_dict() for group, scores in groups.items()}

    report: dict[str, Any] = {}
    for name in runners:
        report[name] = {
            "by_group": collect(name, lambda r: "/".join(group_key(r.task))),
            "by_kind": collect(name, lambda r: kind_label(r.task)),
            "by_language": collect(name, lambda r: r.task.language),
            "all": summarize([r.scores[name] for r in results]).as_dict(),
        }
    return report


def decisions(results: Sequence[TaskResult], runner: str = "ours") -> dict[str, dict[str, int]]:
    """Per hole kind: how often context.py chose each mode and reason, and how
    often each post-processing step changed `runner`'s answer."""
    counts: dict[str, dict[str, int]] = {}
    for result in results:
        kind = counts.setdefault(result.task.kind.value, {})
        label = f"{result.mode}: {result.reason}"
        kind[label] = kind.get(label, 0) + 1
        ours = result.answers.get(runner)
        for step in ours.steps if ours else ():
            kind[f"step {step}"] = kind.get(f"step {step}", 0) + 1
    return {kind: dict(sorted(c.items(), key=lambda item: -item[1])) for kind, c in counts.items()}


def render_decisions(counts: dict[str, dict[str, int]], runner: str = "ours") -> str:
    lines = [f"context decisions and post-processing steps ({runner}), per hole kind:"]
    for kind, labels in counts.items():
        lines.append(f"  {kind}: " + "; ".join(f"{label} {n}" for label, n in labels.items()))
    return "\n".join(lines)


def render_context_use(results: Sequence[TaskResult], runner: str = "project") -> str:
    """How often project context held the definition the answer needs (why it helps, or not)."""
    answers = [r.answers[runner] for r in results if runner in r.answers]
    if not answers:
        return ""
    held = sum(1 for a in answers if a.definition_in_context)
    with_context = sum(1 for a in answers if a.context_files)
    return (
        f"project context: the needed definition was in {held}/{len(answers)} prompts; "
        f"{with_context}/{len(answers)} prompts had any"
    )


def render_candidates(results: Sequence[TaskResult], runner: str = "ours") -> str:
    """How many ranked blank lines had the exact line among their candidates: the most a
    better judge (`lsp_server.ranking`) could win."""
    ranked = [r for r in results if runner in r.answers and len(r.answers[runner].candidates) > 1]
    if not ranked:
        return ""
    chosen = sum(1 for r in ranked if r.scores[runner].exact)
    some = sum(1 for r in ranked if _some_candidate_exact(r, runner))
    return (
        f"line candidates ({runner}): {len(ranked)} blank lines ranked; the chosen line exact in "
        f"{chosen}, some candidate exact in {some} (what a perfect judge would reach)"
    )


def _some_candidate_exact(result: TaskResult, runner: str) -> bool:
    return any(exact_match(c["text"], result.task.expected) for c in result.answers[runner].candidates)


def render_findings(results: Sequence[TaskResult], runners: Sequence[str]) -> str:
    """What the terminal shows under the table: decisions, project context, candidates."""
    lines = [render_decisions(decisions(results, runners[0]), runners[0])]
    if "project" in runners:
        lines.append(render_context_use(results))
    lines += [render_candidates(results, name) for name in runners]
    return "\n".join(line for line in lines if line)


def write_json(
    path: Path, meta: dict[str, Any], results: Sequence[TaskResult], runners: Sequence[str]
) -> None:
    document = {
        "meta": meta,
        "summary": summaries(results, runners),
        "decisions": decisions(results, runners[0]),
        "tasks": [result.record() for result in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# -- table ------------------------------------------------------------------------------------

_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("EM%", "exact_match", True),
    ("ES%", "edit_similarity", True),
    ("empty%", "empty_share", True),
    ("parses%", "parse_share", True),
    ("clean%", "clean_share", True),
    ("repeats%", "repeat_share", True),
    ("p50 ms", "latency_p50_ms", False),
    ("p90 ms", "latency_p90_ms", False),
)
PASS_COLUMN = ("pass@1%", "pass_at_1", True)
"""Shown after ES where the tasks were judged by running tests (the exec track)."""
DELTA_COLUMNS = ("exact_match", "edit_similarity", "pass_at_1")
COMPARISONS = (("project", "in-file"), ("ours", "baseline"))
"""(reference, against) pairs a table shows the gain for, the first whose runners both ran."""


def _cell(value: float | None, percent: bool) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}" if percent else f"{value:.0f}"


def _delta(reference: float | None, against: float | None) -> str:
    return "-" if reference is None or against is None else f"{(reference - against) * 100:+.1f}"


def render_table(summary: dict[str, Any], runners: Sequence[str]) -> str:
    """One row per language and kind, then per kind and overall. A cell holds one
    value per runner ("ours/baseline"); EM, ES and pass@1 also show the gain of ours
    over the baseline (of project context over the in-file prompt) in points."""
    reference, against = next((pair for pair in COMPARISONS if set(pair) <= set(runners)), COMPARISONS[-1])
    compare = reference in runners and against in runners
    first = runners[0]
    keys: list[tuple[str, str, dict[str, Any]]] = []
    for group in summary[first]["by_group"]:
        language, kind = group.split("/")
        keys.append((language, kind, {name: summary[name]["by_group"][group] for name in runners}))
    for kind in summary[first]["by_kind"]:
        keys.append(("(all)", kind, {name: summary[name]["by_kind"][kind] for name in runners}))
    keys.append(("(all)", "(all)", {name: summary[name]["all"] for name in runners}))
    columns = list(_COLUMNS)
    if any(summary[name]["all"].get("pass_at_1") is not None for name in runners):
        columns.insert(2, PASS_COLUMN)
    header = ["language", "kind", "n"]
    for title, field, _ in columns:
        header.append(title)
        if compare and field in DELTA_COLUMNS:
            header.append("Δ")
    rows = [header]
    for language, kind, values in keys:
        cells = [language, kind, str(values[first]["n"])]
        for _, field, percent in columns:
            cells.append("/".join(_cell(values[name][field], percent) for name in runners))
            if compare and field in DELTA_COLUMNS:
                cells.append(_delta(values[reference][field], values[against][field]))
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"cells: {'/'.join(runners)}" + (f"; Δ = {reference} - {against}, in points" if compare else "")]
    for index, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(width) if column < 2 else cell.rjust(width)
                for column, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


# -- chart -----------------------------------------------------------------------------------------


def draw_chart(path: Path, summary: dict[str, Any], runners: Iterable[str], title: str) -> None:
    """Grouped bars: exact match and edit similarity per language and kind, one bar per runner."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        from lsp_server.errors import InklingError

        raise InklingError("--chart needs matplotlib (pip install matplotlib)") from exc
    names = list(runners)
    groups = list(summary[names[0]]["by_group"])
    figure, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.55 * len(groups) * len(names)), 8), sharex=True)
    width = 0.8 / len(names)
    positions = range(len(groups))
    for axis, (label, field) in zip(
        axes, (("exact match %", "exact_match"), ("edit similarity %", "edit_similarity")), strict=True
    ):
        for index, name in enumerate(names):
            values = [summary[name]["by_group"][group][field] * 100 for group in groups]
            axis.bar(
                [p + (index - (len(names) - 1) / 2) * width for p in positions], values, width, label=name
            )
        axis.set_ylabel(label)
        axis.set_ylim(0, 100)
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend()
    axes[0].set_title(title)
    axes[1].set_xticks(list(positions), [g.replace("/", "\n") for g in groups], fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
