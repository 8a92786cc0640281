"""Fill-in-the-middle tasks: holes punched into real files where an editor would ask.

Every task removes one stretch `original[start:end]` and puts the cursor at
`start`, so `text[:offset] + expected + text[offset:]` is the original file.
The kinds, cut by `lsp_server.holes.tokens` (the vocabulary is shared with
training, `lsp_server.holes.HoleKind`):

* line    - a whole line's code; the cursor is after its indentation.
* midline - the rest of a line from a random token boundary (either side of
            the blank before a token, so that prompts ending in a space occur).
* block   - the statements of a function, loop or branch body (tree-sitter
            query per language); the cursor is on the first body line after
            its indentation, as an editor leaves it after Enter on the opener.
* comment_code - a function body written after its documentation (a
            docstring, or a comment on the line above the function), cut as a
            block is: the path of "write the comment, press Enter". Not in the
            default kinds (`--kinds comment_code`).
* span    - a random run of whole tokens, up to three lines, from any token
            start: the cursor may sit in front of code that stays (which the
            server may decline to complete; that counts as an empty answer).

Holes never start or end inside a comment or string, never contain a comment
(line-wise kinds), always contain a word character, never glue two words into
one when removed, and are dropped when the removed text itself would count as
"repeating the suffix" (see metrics.py):
the right answer must never be scored as a defect. Files that do not parse
cleanly are skipped, so that "the completion keeps the file parsing" is
measured against a file whose only problem is the hole.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.corpora import Corpus, SourceFile, Split, read_source
from lsp_server.errors import InklingError
from lsp_server.evaluation.metrics import repeats_suffix
from lsp_server.holes import Hole, HoleKind
from lsp_server.holes.parsed import ParsedFile, parse_text
from lsp_server.holes.tokens import block_holes, comment_code_holes, line_holes, midline_holes, span_holes
from lsp_server.languages import lsp_language_id_for_path

__all__ = [
    "ALL_KINDS",
    "DEFAULT_KINDS",
    "HOLE_FINDERS",
    "HoleKind",
    "Task",
    "build_tasks",
    "make_task",
    "parse_clean",
    "task_from_record",
]
"""HoleKind (a Task's kind) is the shared vocabulary's, re-exported for the evaluation's modules."""

_WORD = re.compile(r"\w")
DEFAULT_KINDS = (HoleKind.LINE, HoleKind.MIDLINE, HoleKind.BLOCK, HoleKind.SPAN)
ALL_KINDS = (*DEFAULT_KINDS, HoleKind.COMMENT_CODE)
"""The kinds cut from single files; crossfile holes come from whole repositories (crossfile.py)."""
HOLE_FINDERS: dict[HoleKind, Callable[[ParsedFile], list[Hole]]] = {
    HoleKind.LINE: line_holes,
    HoleKind.MIDLINE: midline_holes,
    HoleKind.BLOCK: block_holes,
    HoleKind.SPAN: span_holes,
    HoleKind.COMMENT_CODE: comment_code_holes,
}


@dataclass(frozen=True)
class Task:
    id: str
    language: str
    lsp_language_id: str
    kind: HoleKind
    detail: str
    split: Split
    path: str
    key: str
    text: str
    """The file with the hole; the cursor is at `offset`."""
    offset: int
    expected: str
    """Exactly the text removed."""
    line: int
    """0-based cursor line."""
    column: int
    """0-based cursor column in characters."""
    repository: str = ""
    """Cross-file tasks: the root of the repository the file belongs to (the workspace)."""
    names: tuple[str, ...] = ()
    """Cross-file tasks: the other file's names the answer uses."""
    definition: str = ""
    """Cross-file tasks: the file defining them, relative to the repository."""

    @property
    def prefix(self) -> str:
        return self.text[: self.offset]

    @property
    def suffix(self) -> str:
        return self.text[self.offset :]

    def record(self) -> dict[str, Any]:
        """Everything but the file text: the file and the hole identify the task.

        line and column are 1-based; hole_start/hole_end are character (code
        point) offsets into the original file."""
        record: dict[str, Any] = {
            "id": self.id,
            "language": self.language,
            "kind": self.kind.value,
            "detail": self.detail,
            "split": self.split,
            "path": self.path,
            "key": self.key,
            "line": self.line + 1,
            "column": self.column + 1,
            "hole_start": self.offset,
            "hole_end": self.offset + len(self.expected),
            "expected": self.expected,
        }
        if self.repository:
            record |= {
                "repository": self.repository,
                "names": list(self.names),
                "definition": self.definition,
            }
        return record


# -- tasks ------------------------------------------------------------------------------------------


def parse_clean(source: SourceFile) -> ParsedFile | None:
    """The parsed file, or None when it cannot be read or does not parse without errors."""
    text = read_source(source.path)
    return None if text is None else parse_text(source.language, text)


def make_task(source: SourceFile, file: ParsedFile, hole: Hole) -> Task | None:
    """The task for one hole, or None when the right answer would itself repeat the
    suffix, or when removing it glues two words into one (`_tempfile|path`): no
    one edits code into that state, and the cursor would sit inside an identifier."""
    original = file.text
    expected = original[hole.start : hole.end]
    text = original[: hole.start] + original[hole.end :]
    if _WORD.match(text[hole.start - 1 : hole.start] or " ") and _WORD.match(
        text[hole.start : hole.start + 1] or " "
    ):
        return None
    line_prefix = original[original.rfind("\n", 0, hole.start) + 1 : hole.start]
    if repeats_suffix(expected, text[hole.start :], line_prefix):
        return None
    line = file.line_of(hole.start)
    column = hole.start - file.line_starts[line]
    return Task(
        id=f"{hole.kind.value}:{source.key}:{line + 1}:{column + 1}",
        language=source.language,
        lsp_language_id=lsp_language_id_for_path(str(source.path)),
        kind=hole.kind,
        detail=hole.detail,
        split=source.split,
        path=str(source.path),
        key=source.key,
        text=text,
        offset=hole.start,
        expected=expected,
        line=line,
        column=column,
    )


def task_from_record(record: dict[str, Any]) -> Task:
    """Rebuild a task from its JSON record and the file it names (which must not have changed)."""
    original = Path(record["path"]).read_text(encoding="utf-8")
    start, end = record["hole_start"], record["hole_end"]
    if original[start:end] != record["expected"]:
        raise InklingError(f"{record['path']} changed since task {record['id']} was made")
    return Task(
        id=record["id"],
        language=record["language"],
        lsp_language_id=lsp_language_id_for_path(record["path"]),
        kind=HoleKind(record["kind"]),
        detail=record["detail"],
        split=record["split"],
        path=record["path"],
        key=record["key"],
        text=original[:start] + original[end:],
        offset=start,
        expected=record["expected"],
        line=record["line"] - 1,
        column=record["column"] - 1,
        repository=record.get("repository", ""),
        names=tuple(record.get("names", ())),
        definition=record.get("definition", ""),
    )


def _round_robin(lists: Sequence[Sequence[SourceFile]]) -> Iterable[SourceFile]:
    longest = max((len(items) for items in lists), default=0)
    for index in range(longest):
        for items in lists:
            if index < len(items):
                yield items[index]


def build_tasks(
    corpora: Sequence[Corpus],
    *,
    kinds: Sequence[HoleKind] = DEFAULT_KINDS,
    splits: Sequence[Split] = ("dev",),
    per_group: int = 50,
    seed: int = 0,
    per_file: int = 2,
) -> list[Task]:
    """Up to `per_group` tasks per language, split and kind, at most `per_file` per file.

    Files are visited in a seeded order that does not depend on `per_group`,
    alternating between a language's corpora: a smaller run is a prefix of a
    larger one with the same seed."""
    tasks: list[Task] = []
    languages = list(dict.fromkeys(corpus.language for corpus in corpora))
    for language in languages:
        for split in splits:
            ordered = []
            for corpus in corpora:
                if corpus.language != language:
                    continue
                files = [f for f in corpus.files if f.split == split]
                random.Random(f"{seed}:{corpus.name}:{split}").shuffle(files)
                ordered.append(files)
            tasks.extend(_tasks_for(_round_robin(ordered), kinds, per_group, seed, per_file))
    return tasks


def _tasks_for(
    files: Iterable[SourceFile], kinds: Sequence[HoleKind], per_group: int, seed: int, per_file: int
) -> list[Task]:
    found: dict[HoleKind, list[Task]] = {kind: [] for kind in kinds}
    for source in files:
        wanted = [kind for kind in kinds if len(found[kind]) < per_group]
        if not wanted:
            break
        file = parse_clean(source)
        if file is None:
            continue
        for kind in wanted:
            holes = HOLE_FINDERS[kind](file)
            chooser = random.Random(f"{seed}:{source.key}:{kind.value}")
            chooser.shuffle(holes)
            picked = 0
            for hole in holes:
                if picked == per_file or len(found[kind]) == per_group:
                    break
                task = make_task(source, file, hole)
                if task is not None:
                    found[kind].append(task)
                    picked += 1
    return [task for kind in kinds for task in found[kind]]
