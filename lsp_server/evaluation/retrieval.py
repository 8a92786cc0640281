"""Retrieval alone: does project context bring the definition a cross-file hole needs?

The crossfile track's exact match depends on the model; which definitions reach
the prompt does not, and it is measured in seconds instead of half an hour.
Tune the context sources on the dev split with it, check them on the test
split, then run the model (`inkling eval --track crossfile`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lsp_server.evaluation.runners import Workspaces, holds_definition, shows_answer
from lsp_server.evaluation.tasks import Task
from lsp_server.languages import language_for_id
from lsp_server.project_context import ContextBudget
from lsp_server.settings import Settings


@dataclass(frozen=True)
class Retrieved:
    task_id: str
    language: str
    detail: str
    definition: str
    found: bool
    answer_shown: bool
    """The hole's text appears verbatim in the context (similar code from a sibling file)."""
    context_files: tuple[str, ...]
    context_chars: int
    gather_ms: float

    def record(self) -> dict[str, object]:
        return asdict(self)


def retrieve(tasks: Iterable[Task], settings: Settings) -> Iterable[Retrieved]:
    """The context the server would put in front of each task's prompt, and what it holds."""
    workspaces = Workspaces()
    budget = ContextBudget.from_settings(settings)
    for task in tasks:
        path, project = workspaces.open(task)
        started = time.perf_counter()
        try:
            files = project.gather(
                path, language_for_id(task.lsp_language_id), task.text, task.offset, budget
            )
        finally:
            project.note_close(path)
        yield Retrieved(
            task.id,
            task.language,
            task.detail,
            task.definition,
            holds_definition(task, files),
            shows_answer(task, files),
            tuple(f.path for f in files),
            sum(len(f.text) for f in files),
            round((time.perf_counter() - started) * 1000, 2),
        )


def render(results: Sequence[Retrieved]) -> str:
    """Share of tasks whose definition reached the prompt, by language and by kind of use."""
    rows: dict[str, list[Retrieved]] = defaultdict(list)
    for result in results:
        rows[result.language].append(result)
        rows[result.detail].append(result)
        rows["all"].append(result)
    lines = [
        "| rows | n | definition in the prompt | answer shown verbatim | context chars (mean) "
        "| gather ms p50 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in sorted(rows, key=lambda key: (key == "all", "/" in key, key)):
        group = rows[name]
        found = sum(r.found for r in group)
        shown = sum(r.answer_shown for r in group)
        times = sorted(r.gather_ms for r in group)
        lines.append(
            f"| {name} | {len(group)} | {found} ({100 * found / len(group):.1f}%) "
            f"| {shown} ({100 * shown / len(group):.1f}%) "
            f"| {sum(r.context_chars for r in group) / len(group):.0f} | {times[len(times) // 2]:.1f} |"
        )
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, object], results: Sequence[Retrieved]) -> None:
    import json

    found = sum(r.found for r in results)
    document = {
        "meta": meta,
        "summary": {
            "tasks": len(results),
            "definition_in_context": found,
            "answer_shown": sum(r.answer_shown for r in results),
        },
        "tasks": [r.record() for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
