"""Held-out holes in functions with tests, scored by running those tests.

The holes are `line` and `block` tasks (`lsp_server.evaluation.tasks`: a clean
line's code, the cursor after its indentation; a body's statements, the cursor
on its first line) cut from one split of Python's standard library (by file,
as the corpora split it), in modules that CPython's own test suite covers
(`Lib/test/test_<package>`), where

* the hole starts inside a function's body (not its docstring),
* its first line runs when that test module runs (traced once per module), and
* it matters to the tests: with the hole's code replaced by `pass` (at the
  cursor, hence at the right indentation), they fail.

A completion is then scored by execution: the module, with the completion in
the hole, is put first on `sys.path` (a copy of its package, for a module
inside one) and the test module runs against it in a fresh interpreter
(`python -I`, its own temporary directory as the working and temporary
directory, a time limit, no network: `lsp_server.stdlib_tests`). The module must
really be the copy (modules the interpreter imports at start-up cannot be
replaced: they are skipped), and the tests must pass on the untouched copy
first.

Finding the holes runs tests (minutes); each selection is kept in a JSON file
in the cache and rebuilt only when the standard library changed. `inkling
bench-peer` uses the test split's line holes (`tested_holes`), `inkling eval
--track exec` both kinds of either split (`exec_track.py`).
"""

from __future__ import annotations

import ast
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lsp_server.corpora import SourceFile, Split, standard_corpora
from lsp_server.evaluation.metrics import normalize
from lsp_server.evaluation.tasks import HOLE_FINDERS, HoleKind, Task, make_task, parse_clean, task_from_record
from lsp_server.holes import Hole
from lsp_server.holes.parsed import ParsedFile
from lsp_server.models import cache_dir
from lsp_server.stdlib_tests import (
    TEST_TIMEOUT_S,
    run_tests,
    sandbox_mode,
    stdlib,
)

log = logging.getLogger(__name__)

MODULE_BUDGET_S = 15.0
"""Modules whose tests take longer than this untouched are not used: every hole runs them."""
SELECTION_VERSION = 1
"""`tested_holes`' selection (bench-peer's): raise it when the holes it chooses change."""
EXEC_SELECTION_VERSION = 1
"""`exec_selection`'s (the eval's exec track): raise it when the holes it chooses change."""
PER_FILE = 3
TESTED_KINDS = (HoleKind.LINE, HoleKind.BLOCK)


@dataclass(frozen=True)
class TestedHole:
    __test__ = False  # not a pytest class

    task: Task
    module: str
    """The dotted name the tests import it by (`json.encoder`)."""
    tests: str
    """The test module (`test.test_json`)."""

    @property
    def line_start(self) -> int:
        return self.task.text.rfind("\n", 0, self.task.offset) + 1

    @property
    def line_end(self) -> int:
        end = self.task.text.find("\n", self.task.offset)
        return len(self.task.text) if end < 0 else end

    @property
    def expected_line(self) -> str:
        """The whole line as it stands in the original file, indentation included."""
        return self.task.text[self.line_start : self.task.offset] + self.task.expected

    def filled(self, line: str) -> str:
        """The original file with the hole's line replaced by `line` (one line)."""
        return self.task.text[: self.line_start] + line + self.task.text[self.line_end :]

    def fill(self, answer: str) -> str:
        """The file with `answer` inserted at the cursor, as the eval's metrics see it."""
        return self.task.text[: self.task.offset] + answer + self.task.text[self.task.offset :]

    def record(self) -> dict[str, Any]:
        return {**self.task.record(), "module": self.module, "tests": self.tests}


def hole_from_record(record: dict[str, Any]) -> TestedHole:
    return TestedHole(task_from_record(record), record["module"], record["tests"])


def module_and_tests(source: SourceFile) -> tuple[str, str] | None:
    """The module's dotted name and the test module that covers its package, if any."""
    relative = PurePosixPath(source.key.split("/", 1)[1])
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or parts[-1] == "__main__" or any(not part.isidentifier() for part in parts):
        return None
    top = parts[0].lstrip("_")
    tests = stdlib() / "test"
    for name in (f"test_{parts[0]}", f"test_{top}"):
        if (tests / f"{name}.py").is_file() or (tests / name / "__init__.py").is_file():
            return ".".join(parts), f"test.{name}"
    return None


def passes(hole: TestedHole, line: str) -> bool:
    """Whether the tests pass with `line` (one line) in place of the hole's line. The right
    line passes without a run (its tests passed on the original when the hole was chosen)."""
    if not line.strip():
        return False
    if normalize(line) == normalize(hole.expected_line):
        return True
    return run_tests(Path(hole.task.path), hole.module, hole.tests, hole.filled(line)).passed


# -- choosing the holes ------------------------------------------------------------------------


def _function_body_lines(text: str) -> set[int]:
    """1-based lines inside function bodies, docstrings excluded."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            for statement in body:
                lines.update(range(statement.lineno, (statement.end_lineno or statement.lineno) + 1))
    return lines


def split_sources(seed: int, split: Split = "test") -> list[SourceFile]:
    """The standard library's files of one split, in the seeded order the holes are chosen in."""
    (corpus,) = standard_corpora("python")
    files = [source for source in corpus.files if source.split == split]
    random.Random(f"tested-holes:{seed}").shuffle(files)
    return files


def _shuffled_holes(parsed: ParsedFile, kind: HoleKind, seed: int, key: str) -> list[Hole]:
    holes = HOLE_FINDERS[kind](parsed)
    # Line holes keep the order bench-peer's selection was first made with.
    salt = f"{seed}:{key}" if kind is HoleKind.LINE else f"{seed}:{key}:{kind.value}"
    random.Random(salt).shuffle(holes)
    return holes


def choose_holes(
    count: int,
    *,
    seed: int = 0,
    split: Split = "test",
    kinds: Sequence[HoleKind] = (HoleKind.LINE,),
    per_file: int = PER_FILE,
    sources: Iterable[SourceFile] | None = None,
    progress: Callable[[str], None] = lambda _: None,
    found: Callable[[TestedHole], None] = lambda _: None,
) -> list[TestedHole]:
    """Up to `count` holes of each kind (see the module's docstring), kind by kind; minutes:
    it runs tests. Files come from `sources`, else from `split` in the seeded order; each kind
    is picked apart from the others, so that one kind's holes do not depend on the kinds asked
    with it, and a smaller `count` gives a prefix of a larger one's."""
    unknown = [kind.value for kind in kinds if kind not in TESTED_KINDS]
    if unknown:
        raise ValueError(f"no tested holes of kind {', '.join(unknown)}")
    chosen: dict[HoleKind, list[TestedHole]] = {kind: [] for kind in kinds}
    slow: set[str] = set()  # test modules over the budget: every module they cover is skipped
    for source in split_sources(seed, split) if sources is None else sources:
        wanted = [kind for kind in kinds if len(chosen[kind]) < count]
        if not wanted:
            break
        names = module_and_tests(source)
        parsed = parse_clean(source)
        if names is None or parsed is None:
            continue
        module, tests = names
        if tests in slow:
            continue
        try:
            body_lines = _function_body_lines(parsed.text)
        except SyntaxError:
            continue
        baseline = run_tests(source.path, module, tests, parsed.text, trace=True, timeout=4 * MODULE_BUDGET_S)
        if baseline.seconds > MODULE_BUDGET_S:
            slow.add(tests)
        if not baseline.shadowed or not baseline.passed or baseline.seconds > MODULE_BUDGET_S:
            why = "not replaceable" if not baseline.shadowed else "failing" if not baseline.passed else "slow"
            progress(f"skip {module} ({tests}: {why}, {baseline.seconds:.1f} s)")
            continue
        target = _Target(source, parsed, module, tests, body_lines & baseline.executed, baseline.seconds)
        picked = []
        for kind in wanted:
            for hole in _noticed(target, kind, seed, min(per_file, count - len(chosen[kind]))):
                chosen[kind].append(hole)
                picked.append(hole)
                found(hole)
        total = sum(len(holes) for holes in chosen.values())
        progress(f"{module}: {len(picked)} holes ({total}/{count * len(kinds)})")
    return [hole for kind in kinds for hole in chosen[kind]]


@dataclass(frozen=True)
class _Target:
    """A module whose tests passed on its copy, and what that run said."""

    source: SourceFile
    parsed: ParsedFile
    module: str
    tests: str
    eligible: set[int]
    """1-based lines in function bodies that the tests ran."""
    seconds: float


def _noticed(target: _Target, kind: HoleKind, seed: int, limit: int) -> list[TestedHole]:
    """Up to `limit` holes of one kind whose first line is eligible and whose loss the tests
    notice: with `pass` in place of the hole's code, they fail."""
    # A loop's body gone loops forever: a block's run ends well before the usual limit. Line
    # holes keep the limit they were first chosen with (bench-peer's selection).
    timeout = TEST_TIMEOUT_S if kind is HoleKind.LINE else min(TEST_TIMEOUT_S, 10 + 4 * target.seconds)
    picked: list[TestedHole] = []
    for hole in _shuffled_holes(target.parsed, kind, seed, target.source.key):
        if len(picked) == limit:
            break
        if target.parsed.line_of(hole.start) + 1 not in target.eligible:
            continue
        task = make_task(target.source, target.parsed, hole)
        if task is None:
            continue
        candidate = TestedHole(task, target.module, target.tests)
        if run_tests(
            target.source.path, target.module, target.tests, candidate.fill("pass"), timeout=timeout
        ).passed:
            continue  # the tests do not notice the code gone: they would not judge a completion
        picked.append(candidate)
    return picked


# -- the selections, cached ----------------------------------------------------------------------


def _python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def tested_holes(
    count: int, *, seed: int = 0, cache: Path | None = None, progress: Callable[[str], None] = lambda _: None
) -> list[TestedHole]:
    """bench-peer's holes: the first `count` line holes of the test split's seeded selection,
    from the cache when it has as many."""
    path = cache or cache_dir() / "bench-peer" / f"tested-holes-py{_python()}-{seed}.json"
    stamp = {"version": SELECTION_VERSION, "python": sys.version.split()[0], "seed": seed}
    return _cached(
        path, stamp, count, (HoleKind.LINE,), lambda: choose_holes(count, seed=seed, progress=progress)
    )


def exec_selection(
    count: int,
    *,
    seed: int = 0,
    split: Split = "test",
    kinds: Sequence[HoleKind] = TESTED_KINDS,
    cache: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
    found: Callable[[TestedHole], None] = lambda _: None,
) -> list[TestedHole]:
    """The eval's exec track: the first `count` holes of each kind of one split's seeded
    selection, from the cache (one file per Python version, seed, split and kinds) when it
    has as many."""
    kinds = [kind for kind in TESTED_KINDS if kind in kinds]  # one order, one cache file
    names = "+".join(kind.value for kind in kinds)
    path = cache or cache_dir() / "eval" / f"exec-holes-py{_python()}-seed{seed}-{split}-{names}.json"

    def choose() -> list[TestedHole]:
        progress(f"choosing {names} holes of the {split} split")
        return choose_holes(count, seed=seed, split=split, kinds=kinds, progress=progress, found=found)

    return _cached(path, exec_stamp(seed, split, kinds), count, kinds, choose)


def exec_stamp(seed: int, split: Split, kinds: Sequence[HoleKind]) -> dict[str, Any]:
    """What a stored exec selection must match to be used: anything that changes the choice."""
    return {
        "version": EXEC_SELECTION_VERSION,
        "python": sys.version.split()[0],
        "seed": seed,
        "split": split,
        "kinds": [kind.value for kind in kinds],
        "sandbox": sandbox_mode(),
    }


def _cached(
    path: Path,
    stamp: dict[str, Any],
    count: int,
    kinds: Sequence[HoleKind],
    choose: Callable[[], list[TestedHole]],
) -> list[TestedHole]:
    """The first `count` holes of each kind from `path` when its stamp matches and it holds as
    many (or all its split has), else `choose()`'s, stored for the next time."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if {key: stored.get(key) for key in stamp} == stamp:
            holes = [hole_from_record(record) for record in stored["holes"]]
            exhausted = _exhausted_kinds(stored.get("exhausted", False), kinds)
            by_kind = {kind: [h for h in holes if h.task.kind is kind][:count] for kind in kinds}
            if all(len(by_kind[kind]) == count or kind in exhausted for kind in kinds):
                return [hole for kind in kinds for hole in by_kind[kind]]
    except (OSError, ValueError, KeyError):
        pass
    except Exception as exc:  # a file changed since: choose again
        log.info("chosen holes out of date (%s): choosing again", exc)
    started = time.monotonic()
    holes = choose()
    short = [kind.value for kind in kinds if sum(1 for h in holes if h.task.kind is kind) < count]
    body = {
        **stamp,
        "exhausted": short,
        "choice_seconds": round(time.monotonic() - started, 1),
        "holes": [hole.record() for hole in holes],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)
    return holes


def _exhausted_kinds(stored: object, kinds: Sequence[HoleKind]) -> set[HoleKind]:
    """The kinds a stored selection ran out of: a list of kinds, or (files written before
    there were several kinds) true for all of them."""
    if isinstance(stored, bool):
        return set(kinds) if stored else set()
    return {HoleKind(value) for value in stored} if isinstance(stored, list) else set()
