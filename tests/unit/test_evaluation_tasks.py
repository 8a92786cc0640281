"""Holes are punched where an editor would ask, and every task can be undone exactly."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

import pytest

from lsp_server import syntax
from lsp_server.context import Mode, build_context
from lsp_server.corpora import split_of
from lsp_server.evaluation.corpus import directory_corpora
from lsp_server.evaluation.metrics import repeats_suffix
from lsp_server.evaluation.tasks import DEFAULT_KINDS, HoleKind, Task, build_tasks
from lsp_server.languages import language_for_id

SOURCES = {
    "shapes.py": '''"""Shapes."""

import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius ** 2

    def grow(self, factor):
        if factor <= 0:
            raise ValueError("factor must be positive")
        self.radius = self.radius * factor
        return self


def total_area(shapes):
    total = 0.0
    for shape in shapes:
        total += shape.area()
    return total
''',
    "sum.go": """package shapes

import "fmt"

// Sum adds the numbers.
func Sum(values []int) int {
	total := 0
	for _, v := range values {
		total += v
	}
	return total
}

func Describe(values []int) string {
	if len(values) == 0 {
		return "empty"
	}
	return fmt.Sprintf("%d values, sum %d", len(values), Sum(values))
}
""",
    "list.js": """'use strict';

function last(items) {
  if (items.length === 0) {
    return undefined;
  }
  return items[items.length - 1];
}

function count(items, predicate) {
  let found = 0;
  for (const item of items) {
    if (predicate(item)) {
      found += 1;
    }
  }
  return found;
}

module.exports = { last, count };
""",
    "queue.ts": """export class Queue<T> {
  private items: T[] = [];

  push(item: T): void {
    this.items.push(item);
  }

  pop(): T | undefined {
    if (this.items.length === 0) {
      return undefined;
    }
    return this.items.shift();
  }
}
""",
    "buf.c": """#include <stdlib.h>
#include <string.h>

struct buf {
    char *data;
    size_t len;
};

int buf_append(struct buf *b, const char *text, size_t n)
{
    char *grown = realloc(b->data, b->len + n);
    if (grown == NULL) {
        return -1;
    }
    memcpy(grown + b->len, text, n);
    b->data = grown;
    b->len += n;
    return 0;
}
""",
    "broken.py": "def broken(:\n    return 1\n" + "x = 1\n" * 40,
}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for name, text in SOURCES.items():
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def tasks(corpus_dir: Path) -> list[Task]:
    corpora = directory_corpora(corpus_dir, ["python", "go", "javascript", "typescript", "c"])
    return build_tasks(corpora, splits=("dev", "test"), per_group=100, per_file=100)


def _original(task: Task) -> str:
    return Path(task.path).read_text()


def test_every_task_is_the_original_file_with_one_stretch_removed(tasks: list[Task]) -> None:
    assert tasks
    for task in tasks:
        assert task.text[: task.offset] + task.expected + task.text[task.offset :] == _original(task)
        line_start = task.text.rfind("\n", 0, task.offset) + 1
        assert task.text.count("\n", 0, task.offset) == task.line
        assert task.offset - line_start == task.column


def test_all_languages_and_kinds_are_covered_and_broken_files_skipped(tasks: list[Task]) -> None:
    kinds = Counter((task.language, task.kind) for task in tasks)
    for language in ("python", "go", "javascript", "typescript", "c"):
        for kind in DEFAULT_KINDS:  # crossfile holes come from crossfile.py
            assert kinds[(language, kind)] > 0, (language, kind)
    assert not [task for task in tasks if task.path.endswith("broken.py")]


def test_line_holes_put_the_cursor_after_the_indentation(tasks: list[Task]) -> None:
    for task in (t for t in tasks if t.kind is HoleKind.LINE):
        line_prefix = task.text[task.offset - task.column : task.offset]
        assert not line_prefix.strip(), task.id
        assert "\n" not in task.expected
        assert task.text[task.offset : task.offset + 1] in ("\n", "")
        assert task.expected.strip() == _original(task).split("\n")[task.line].strip()


def test_midline_holes_remove_the_rest_of_the_line_from_a_token_boundary(tasks: list[Task]) -> None:
    details = Counter()
    for task in (t for t in tasks if t.kind is HoleKind.MIDLINE):
        assert "\n" not in task.expected
        assert task.text[task.offset : task.offset + 1] in ("\n", "")
        assert task.text[task.offset - task.column : task.offset].strip(), "code stays left of the cursor"
        details[task.detail] += 1
    assert details["after-blank"] and details["before-blank"]


def test_block_holes_leave_an_indented_empty_line_that_the_server_sees_as_a_block(tasks: list[Task]) -> None:
    blocks = [t for t in tasks if t.kind is HoleKind.BLOCK]
    assert {t.detail for t in blocks} == {"function", "loop", "branch"}
    for task in blocks:
        line_end = task.text.find("\n", task.offset)
        cursor_line = task.text[task.offset - task.column : line_end]
        assert task.column > 0 and not cursor_line.strip(), task.id
        language = language_for_id(task.language)
        assert language is not None
        tree = syntax.parse(language, task.text.encode())
        context = build_context(task.text, task.offset, language, tree)
        assert context.mode is Mode.BLOCK, (task.id, context.reason)


DOCUMENTED = '''import os


def home(user):
    """The user's home directory."""
    base = os.path.expanduser("~" + user)
    return os.path.realpath(base)


def names(folder):
    return sorted(entry.name for entry in os.scandir(folder) if not entry.name.startswith("."))
'''


def test_comment_code_holes_are_bodies_after_their_documentation_in_block_mode(
    corpus_dir: Path, tmp_path: Path
) -> None:
    """The path of "write the docstring (or the comment), press Enter": the server's syntax
    rules see an empty body there and write a block."""
    (tmp_path / "documented.py").write_text(DOCUMENTED)
    (tmp_path / "sum.go").write_text(SOURCES["sum.go"])
    corpora = directory_corpora(tmp_path, ["python", "go"])
    tasks = build_tasks(corpora, kinds=[HoleKind.COMMENT_CODE], splits=("dev", "test"), per_file=10)
    by_detail = {(task.language, task.detail): task for task in tasks}
    docstring = by_detail[("python", "after-docstring")]
    assert docstring.expected == 'base = os.path.expanduser("~" + user)\n    return os.path.realpath(base)'
    comment = by_detail[("go", "after-comment")]
    assert comment.expected.startswith("total := 0") and comment.expected.endswith("return total")
    for task in (docstring, comment):
        cursor_line = task.text[task.offset - task.column : task.text.find("\n", task.offset)]
        assert task.column > 0 and not cursor_line.strip()
        language = language_for_id(task.language)
        assert language is not None
        context = build_context(task.text, task.offset, language, syntax.parse(language, task.text.encode()))
        assert context.mode is Mode.BLOCK, (task.id, context.reason)
    assert all(task.detail in ("after-docstring", "after-comment") for task in tasks)


def test_spans_are_whole_tokens_over_at_most_three_lines(tasks: list[Task]) -> None:
    spans = [t for t in tasks if t.kind is HoleKind.SPAN]
    assert {t.detail for t in spans} == {"single-line", "multi-line"}
    for task in spans:
        assert task.expected.count("\n") <= 2
        assert task.expected == task.expected.strip(" \t")


def test_no_hole_leaves_the_cursor_inside_an_identifier(tasks: list[Task]) -> None:
    for task in tasks:
        language = language_for_id(task.language)
        assert language is not None
        context = build_context(task.text, task.offset, language, syntax.parse(language, task.text.encode()))
        assert context.reason != "inside an identifier", task.id


def test_the_right_answer_never_counts_as_repeating_the_suffix(tasks: list[Task]) -> None:
    for task in tasks:
        line_prefix = task.text[task.offset - task.column : task.offset]
        assert not repeats_suffix(task.expected, task.suffix, line_prefix), task.id


def test_sampling_is_seeded_and_a_smaller_run_is_a_prefix_of_a_larger_one(corpus_dir: Path) -> None:
    corpora = directory_corpora(corpus_dir, ["python", "go", "javascript", "typescript", "c"])
    small = build_tasks(corpora, splits=("dev", "test"), per_group=1, per_file=1, seed=7)
    large = build_tasks(corpora, splits=("dev", "test"), per_group=3, per_file=1, seed=7)
    again = build_tasks(corpora, splits=("dev", "test"), per_group=3, per_file=1, seed=7)
    other = build_tasks(corpora, splits=("dev", "test"), per_group=3, per_file=1, seed=8)
    assert [t.id for t in large] == [t.id for t in again]
    assert [t.id for t in large] != [t.id for t in other]
    large_ids = {t.id for t in large}
    assert all(t.id in large_ids for t in small)


def test_the_split_is_a_stable_hash_of_the_corpus_key() -> None:
    keys = [f"corpus/dir{i % 7}/file{i}.py" for i in range(4000)]
    splits = [split_of(key) for key in keys]
    assert splits == [split_of(key) for key in keys]
    assert 0.22 < splits.count("test") / len(splits) < 0.28


def test_a_git_repository_contributes_its_tracked_files_only(tmp_path: Path) -> None:
    (tmp_path / "tracked.py").write_text(SOURCES["shapes.py"])
    (tmp_path / "untracked.py").write_text(SOURCES["shapes.py"])
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.py"], check=True)
    (corpus,) = directory_corpora(tmp_path, ["python"])
    assert [f.path.name for f in corpus.files] == ["tracked.py"]
    assert corpus.files[0].key == f"{tmp_path.name}/tracked.py"
