"""Held-out single-line holes in functions with tests, scored by running those tests.

The holes are `line` tasks (`lsp_server.evaluation.tasks`: a clean line's
code, the cursor after its indentation) cut from the held-out (test) half of
Python's standard library, in modules that CPython's own test suite covers
(`Lib/test/test_<package>`), on lines that

* are inside a function's body (not its docstring),
* run when that test module runs (traced once per module), and
* matter to it: with the line's code replaced by `pass`, the tests fail.

A completion is then scored by execution: the module, with the hole's line
replaced by what the client would have in its buffer, is put first on
`sys.path` (a copy of its package, for a module inside one) and the test
module runs against it in a fresh interpreter (`python -I`, its own
temporary directory, a time limit). The module must really be the copy
(modules the interpreter imports at start-up cannot be replaced: they are
skipped), and the tests must pass on the untouched copy first.

Finding the holes runs tests (minutes); the chosen holes are kept in a JSON
file in the cache and rebuilt only when the standard library changed.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lsp_server.corpora import SourceFile, standard_corpora
from lsp_server.evaluation.metrics import normalize
from lsp_server.evaluation.tasks import Task, make_task, parse_clean, task_from_record
from lsp_server.holes.tokens import line_holes
from lsp_server.models import cache_dir

log = logging.getLogger(__name__)

TEST_TIMEOUT_S = 60.0
"""A test run that takes longer fails (a completion that loops forever, say)."""
MODULE_BUDGET_S = 15.0
"""Modules whose tests take longer than this untouched are not used: every hole runs them."""
SELECTION_VERSION = 1


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

    def record(self) -> dict[str, Any]:
        return {**self.task.record(), "module": self.module, "tests": self.tests}


def _stdlib() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def module_and_tests(source: SourceFile) -> tuple[str, str] | None:
    """The module's dotted name and the test module that covers its package, if any."""
    relative = PurePosixPath(source.key.split("/", 1)[1])
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or parts[-1] == "__main__" or any(not part.isidentifier() for part in parts):
        return None
    top = parts[0].lstrip("_")
    tests = _stdlib() / "test"
    for name in (f"test_{parts[0]}", f"test_{top}"):
        if (tests / f"{name}.py").is_file() or (tests / name / "__init__.py").is_file():
            return ".".join(parts), f"test.{name}"
    return None


# -- running a module's tests against a copy ----------------------------------------------

_HARNESS = r"""
import importlib, json, os, sys, threading, unittest
shadow, module, tests, trace_out = sys.argv[1:5]
sys.path.insert(0, shadow)
target = os.path.join(shadow, *module.split("."))
target = target + ".py" if os.path.isfile(target + ".py") else os.path.join(target, "__init__.py")
executed = set()
if trace_out:
    def local(frame, event, arg):
        if event == "line":
            executed.add(frame.f_lineno)
        return local
    def outer(frame, event, arg):
        return local if frame.f_code.co_filename == target else None
    sys.settrace(outer)
    threading.settrace(outer)
imported = importlib.import_module(module)
if os.path.realpath(imported.__file__) != os.path.realpath(target):
    sys.exit(3)
suite = unittest.defaultTestLoader.loadTestsFromName(tests)
with open(os.devnull, "w") as quiet:
    result = unittest.TextTestRunner(stream=quiet, verbosity=0).run(suite)
sys.settrace(None)
if trace_out:
    with open(trace_out, "w") as out:
        json.dump(sorted(executed), out)
sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
"""
NOT_SHADOWED = 3


@dataclass(frozen=True)
class TestRun:
    __test__ = False

    passed: bool
    seconds: float
    shadowed: bool = True
    executed: frozenset[int] = frozenset()


def run_tests(
    source_path: Path,
    module: str,
    tests: str,
    text: str,
    *,
    trace: bool = False,
    timeout: float = TEST_TIMEOUT_S,
) -> TestRun:
    """Run `tests` with `module` (the file `source_path`) replaced by `text`."""
    with tempfile.TemporaryDirectory(prefix="inkling-tested-") as scratch:
        shadow = Path(scratch) / "shadow"
        parts = module.split(".")
        if len(parts) > 1 or source_path.name == "__init__.py":
            package = _stdlib() / parts[0]
            shutil.copytree(package, shadow / parts[0], ignore=shutil.ignore_patterns("__pycache__"))
            relative = source_path.relative_to(_stdlib())
            (shadow / relative).write_text(text, encoding="utf-8")
        else:
            shadow.mkdir()
            (shadow / source_path.name).write_text(text, encoding="utf-8")
        work = Path(scratch) / "work"
        work.mkdir()
        trace_out = str(Path(scratch) / "executed.json") if trace else ""
        started = time.monotonic()
        try:
            result = subprocess.run(
                [sys.executable, "-I", "-c", _HARNESS, str(shadow), module, tests, trace_out],
                cwd=work,
                capture_output=True,
                timeout=timeout,
                check=False,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
        except subprocess.TimeoutExpired:
            return TestRun(False, time.monotonic() - started)
        seconds = time.monotonic() - started
        if result.returncode == NOT_SHADOWED:
            return TestRun(False, seconds, shadowed=False)
        executed: frozenset[int] = frozenset()
        if trace and Path(trace_out).is_file():
            executed = frozenset(json.loads(Path(trace_out).read_text()))
        return TestRun(result.returncode == 0, seconds, executed=executed)


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


def _sources(seed: int) -> Iterator[SourceFile]:
    (corpus,) = standard_corpora("python")
    files = [source for source in corpus.files if source.split == "test"]
    random.Random(f"tested-holes:{seed}").shuffle(files)
    yield from files


def choose_holes(
    count: int, *, seed: int = 0, per_file: int = 3, progress: Callable[[str], None] = lambda _: None
) -> list[TestedHole]:
    """Up to `count` holes (see the module's docstring); minutes: it runs tests."""
    chosen: list[TestedHole] = []
    slow: set[str] = set()  # test modules over the budget: every module they cover is skipped
    for source in _sources(seed):
        if len(chosen) >= count:
            break
        names = module_and_tests(source)
        parsed = parse_clean(source)
        if names is None or parsed is None:
            continue
        module, tests = names
        if tests in slow:
            continue
        original = parsed.text
        try:
            body_lines = _function_body_lines(original)
        except SyntaxError:
            continue
        baseline = run_tests(source.path, module, tests, original, trace=True, timeout=4 * MODULE_BUDGET_S)
        if baseline.seconds > MODULE_BUDGET_S:
            slow.add(tests)
        if not baseline.shadowed or not baseline.passed or baseline.seconds > MODULE_BUDGET_S:
            why = "not replaceable" if not baseline.shadowed else "failing" if not baseline.passed else "slow"
            progress(f"skip {module} ({tests}: {why}, {baseline.seconds:.1f} s)")
            continue
        holes = line_holes(parsed)
        random.Random(f"{seed}:{source.key}").shuffle(holes)
        picked = 0
        for hole in holes:
            if picked == per_file or len(chosen) >= count:
                break
            line = parsed.line_of(hole.start) + 1
            if line not in body_lines or line not in baseline.executed:
                continue
            task = make_task(source, parsed, hole)
            if task is None:
                continue
            candidate = TestedHole(task, module, tests)
            indentation = original[candidate.line_start : hole.start]
            if run_tests(source.path, module, tests, candidate.filled(indentation + "pass")).passed:
                continue  # the tests do not notice the line gone: they would not judge a completion
            chosen.append(candidate)
            picked += 1
        progress(f"{module}: {picked} holes ({len(chosen)}/{count})")
    return chosen


def tested_holes(
    count: int, *, seed: int = 0, cache: Path | None = None, progress: Callable[[str], None] = lambda _: None
) -> list[TestedHole]:
    """The first `count` holes of the seeded selection, from the cache when it has as many."""
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    path = cache or cache_dir() / "bench-peer" / f"tested-holes-py{python}-{seed}.json"
    stamp = {"version": SELECTION_VERSION, "python": sys.version.split()[0], "seed": seed}
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        enough = len(stored["holes"]) >= count or stored.get("exhausted", False)
        if {key: stored.get(key) for key in stamp} == stamp and enough:
            return [
                TestedHole(task_from_record(record), record["module"], record["tests"])
                for record in stored["holes"][:count]
            ]
    except (OSError, ValueError, KeyError):
        pass
    except Exception as exc:  # a file changed since: choose again
        log.info("chosen holes out of date (%s): choosing again", exc)
    holes = choose_holes(count, seed=seed, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**stamp, "exhausted": len(holes) < count, "holes": [hole.record() for hole in holes]}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)
    return holes
