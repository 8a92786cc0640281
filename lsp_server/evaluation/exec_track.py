"""`inkling eval --track exec`: held-out holes scored by running the tests that exercise them.

The holes (`tested_holes.exec_selection`) are `line` and `block` holes in
functions of Python's standard library that CPython's own tests run and
notice, from the dev or the test split (by file, as the corpora split it).
Each answer is scored as the other tracks score it (exact match, edit
similarity, ...) and, in a second pass once the model is done, by running the
module's tests with the answer inserted at the cursor (`judge`): the share of
tasks whose tests pass is pass@1 (one answer per task). Python only: the
tests are the interpreter's own.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lsp_server.corpora import Split
from lsp_server.errors import InklingError
from lsp_server.evaluation.metrics import exact_match, normalize
from lsp_server.evaluation.report import TaskResult
from lsp_server.evaluation.tasks import HoleKind
from lsp_server.evaluation.tested_holes import TESTED_KINDS, TestedHole, exec_selection
from lsp_server.stdlib_tests import TEST_TIMEOUT_S, run_tests, sandbox_mode

LANGUAGE = "python"


def check_options(languages: Sequence[str], kinds: Sequence[HoleKind], sources: Sequence[Path]) -> None:
    """The track's limits, said before anything runs."""
    if list(languages) != [LANGUAGE]:
        raise InklingError(
            f"the exec track is Python only (its tests are the interpreter's own): "
            f"--lang {','.join(languages)} is not available, use --lang python or leave it out"
        )
    unknown = [kind.value for kind in kinds if kind not in TESTED_KINDS]
    if unknown:
        raise InklingError(
            f"the exec track has no {', '.join(unknown)} holes "
            f"(its kinds: {', '.join(kind.value for kind in TESTED_KINDS)})"
        )
    if sources:
        raise InklingError("the exec track's holes come from the standard library and its tests: no --source")


def choose(
    per_group: int, *, splits: Sequence[Split], kinds: Sequence[HoleKind], seed: int, show_progress: bool
) -> list[TestedHole]:
    """`per_group` holes per split and kind, from the cache or chosen now (many minutes: a bar
    shows the holes found)."""
    holes: list[TestedHole] = []
    for split in splits:
        with _LazyBar(f"choosing {split} holes", per_group * len(kinds), show_progress) as bar:
            holes += exec_selection(
                per_group, seed=seed, split=split, kinds=kinds, progress=bar.note, found=bar.found
            )
    return holes


class _LazyBar:
    """A progress bar that appears only once the holes are really being chosen (not read from
    the cache)."""

    def __init__(self, description: str, total: int, enabled: bool) -> None:
        self.description, self.total, self.enabled = description, total, enabled
        self.bar: tqdm[Any] | None = None

    def _shown(self) -> tqdm[Any]:
        if self.bar is None:
            self.bar = tqdm(
                total=self.total,
                desc=self.description,
                unit="hole",
                disable=not self.enabled,
                file=sys.stderr,
            )
        return self.bar

    def note(self, message: str) -> None:
        self._shown().set_postfix_str(message, refresh=True)

    def found(self, hole: TestedHole) -> None:
        self._shown().update(1)

    def __enter__(self) -> _LazyBar:
        return self

    def __exit__(self, *_: object) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass(frozen=True)
class Verdict:
    passed: bool
    ran: bool
    """False when decided without running the tests (an exact or an empty answer)."""
    seconds: float = 0.0


def judge(hole: TestedHole, answer: str, *, timeout: float = TEST_TIMEOUT_S) -> Verdict:
    """Whether the hole's tests pass with `answer` at the cursor. An empty answer fails and the
    expected text (as exact match compares it) passes, both unrun: the tests passed on the
    original when the hole was chosen, and an empty answer leaves the hole's code missing,
    which is what made them fail then."""
    if not answer.strip():
        return Verdict(False, ran=False)
    if exact_match(answer, hole.task.expected):
        return Verdict(True, ran=False)
    run = run_tests(Path(hole.task.path), hole.module, hole.tests, hole.fill(answer), timeout=timeout)
    return Verdict(run.passed, ran=True, seconds=run.seconds)


def judge_results(
    results: Iterable[TaskResult], holes: dict[str, TestedHole], *, show_progress: bool, meta: dict[str, Any]
) -> list[TaskResult]:
    """Every answer judged by running its tests (the same text for one task runs once);
    how many runs and how long go into `meta["exec"]`."""
    results = list(results)
    verdicts: dict[tuple[str, str], Verdict] = {}
    judged: list[TaskResult] = []
    answers = sum(len(result.answers) for result in results)
    with tqdm(total=answers, desc="tests", unit="answer", disable=not show_progress, file=sys.stderr) as bar:
        for result in results:
            hole = holes[result.task.id]
            scores = dict(result.scores)
            for name, answer in result.answers.items():
                key = (result.task.id, normalize(answer.text))
                if key not in verdicts:
                    verdicts[key] = judge(hole, answer.text)
                scores[name] = dataclasses.replace(scores[name], passed=verdicts[key].passed)
                bar.update(1)
            extra = {**result.extra, "module": hole.module, "tests": hole.tests}
            judged.append(dataclasses.replace(result, scores=scores, extra=extra))
    runs = [verdict for verdict in verdicts.values() if verdict.ran]
    meta.setdefault("exec", {}).update(
        test_runs=len(runs), test_seconds=round(sum(verdict.seconds for verdict in runs), 1)
    )
    return judged


def describe() -> dict[str, Any]:
    """How the answers are judged, for the results' `meta`."""
    return {"sandbox": sandbox_mode(), "test_timeout_s": TEST_TIMEOUT_S, "python": sys.version.split()[0]}
