"""Fill-in-the-middle tasks: holes punched into real files where an editor would ask.

Every task removes one stretch `original[start:end]` and puts the cursor at
`start`, so `text[:offset] + expected + text[offset:]` is the original file.
The kinds:

* line    - a whole line's code; the cursor is after its indentation.
* midline - the rest of a line from a random token boundary (either side of
            the blank before a token, so that prompts ending in a space occur).
* block   - the statements of a function, loop or branch body (tree-sitter
            query per language); the cursor is on the first body line after
            its indentation, as an editor leaves it after Enter on the opener.
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

import enum
import itertools
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server import syntax
from lsp_server.errors import InklingError
from lsp_server.evaluation.corpus import Corpus, SourceFile, Split, read_source
from lsp_server.evaluation.metrics import repeats_suffix
from lsp_server.languages import LanguageSpec, language_for_id, lsp_language_id_for_path

_WORD = re.compile(r"\w")
MAX_SPAN_CHARS = 160
MAX_SPAN_LINES = 3
MAX_BLOCK_LINES = 12
MAX_BLOCK_CHARS = 600
"""Bodies a completion of the server's token budget (160) can plausibly write."""


class HoleKind(enum.StrEnum):
    LINE = "line"
    MIDLINE = "midline"
    BLOCK = "block"
    SPAN = "span"
    CROSSFILE = "crossfile"
    """Made by crossfile.py from whole repositories, not from one file: not in ALL_KINDS."""


ALL_KINDS = (HoleKind.LINE, HoleKind.MIDLINE, HoleKind.BLOCK, HoleKind.SPAN)

_BRACE_BODY_QUERY = """
(function_declaration body: (statement_block) @function)
(function_expression body: (statement_block) @function)
(generator_function_declaration body: (statement_block) @function)
(method_definition body: (statement_block) @function)
(arrow_function body: (statement_block) @function)
(for_statement body: (statement_block) @loop)
(for_in_statement body: (statement_block) @loop)
(while_statement body: (statement_block) @loop)
(do_statement body: (statement_block) @loop)
(if_statement consequence: (statement_block) @branch)
(else_clause (statement_block) @branch)
"""

BODY_QUERIES: dict[str, str] = {
    "python": """
(function_definition body: (block) @function)
(for_statement body: (block) @loop)
(while_statement body: (block) @loop)
(if_statement consequence: (block) @branch)
(elif_clause consequence: (block) @branch)
(else_clause body: (block) @branch)
""",
    "go": """
(function_declaration body: (block) @function)
(method_declaration body: (block) @function)
(func_literal body: (block) @function)
(for_statement body: (block) @loop)
(if_statement consequence: (block) @branch)
(if_statement alternative: (block) @branch)
""",
    "javascript": _BRACE_BODY_QUERY,
    "typescript": _BRACE_BODY_QUERY,
    "tsx": _BRACE_BODY_QUERY,
    "c": """
(function_definition body: (compound_statement) @function)
(for_statement body: (compound_statement) @loop)
(while_statement body: (compound_statement) @loop)
(do_statement body: (compound_statement) @loop)
(if_statement consequence: (compound_statement) @branch)
(else_clause (compound_statement) @branch)
""",
}
"""Bodies a block hole may empty, captured as function, loop or branch."""


@dataclass(frozen=True)
class Hole:
    start: int
    end: int
    detail: str


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


# -- the file, as tokens and lines ---------------------------------------------------------


class _File:
    """A parsed source file with character offsets for its tokens and lines."""

    def __init__(self, spec: LanguageSpec, text: str, tree: syntax.Tree) -> None:
        self.spec = spec
        self.text = text
        self.tree = tree
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        self._char_of: list[int] | None = None if text.isascii() else _byte_to_char(text)
        self.comment_kinds = spec.comment_kinds
        atomic = spec.string_kinds | spec.comment_kinds
        self.tokens: list[tuple[int, int, str]] = [
            (self.char(leaf.start_byte), self.char(leaf.end_byte), leaf.type)
            for leaf in syntax.leaves(tree.root_node, atomic)
        ]

    def char(self, byte_offset: int) -> int:
        return byte_offset if self._char_of is None else self._char_of[byte_offset]

    def line_of(self, offset: int) -> int:
        low, high = 0, len(self.line_starts) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if self.line_starts[middle] <= offset:
                low = middle
            else:
                high = middle - 1
        return low

    def line_end(self, line: int) -> int:
        return self.line_starts[line + 1] - 1 if line + 1 < len(self.line_starts) else len(self.text)

    def is_comment(self, kind: str) -> bool:
        return kind in self.comment_kinds


def _byte_to_char(text: str) -> list[int]:
    table: list[int] = []
    for index, char in enumerate(text):
        table.extend([index] * len(char.encode("utf-8", "surrogatepass")))
    table.append(len(text))
    return table


# -- candidates per kind -----------------------------------------------------------------------


def _tokens_by_line(file: _File) -> dict[int, list[tuple[int, int, str]]]:
    lines: dict[int, list[tuple[int, int, str]]] = {}
    for token in file.tokens:
        lines.setdefault(file.line_of(token[0]), []).append(token)
    return lines


def _clean_lines(file: _File) -> dict[int, list[tuple[int, int, str]]]:
    """Lines whose tokens all start and end on the line, with no comment: line-hole material."""
    clean = {}
    for line, tokens in _tokens_by_line(file).items():
        start, end = file.line_starts[line], file.line_end(line)
        if tokens[-1][1] > end or any(file.is_comment(kind) for _, _, kind in tokens):
            continue
        code_start = start + len(file.text[start:end]) - len(file.text[start:end].lstrip(" \t"))
        if tokens[0][0] != code_start:  # the line starts inside a multi-line token
            continue
        clean[line] = tokens
    return clean


def line_holes(file: _File) -> list[Hole]:
    holes = []
    for line, tokens in _clean_lines(file).items():
        end = file.line_end(line)
        code = file.text[tokens[0][0] : end]
        if len(code.strip()) >= 3 and _WORD.search(code):
            holes.append(Hole(tokens[0][0], end, "line"))
    return holes


def midline_holes(file: _File) -> list[Hole]:
    holes = []
    for line, tokens in _clean_lines(file).items():
        end = file.line_end(line)
        for previous, token in itertools.pairwise(tokens):
            if previous[1] == token[0]:
                starts = [(token[0], "adjacent")]
            else:  # either side of the blank: before it, the model must write it
                starts = [(previous[1], "before-blank"), (token[0], "after-blank")]
            for start, detail in starts:
                if _WORD.search(file.text[start:end]):
                    holes.append(Hole(start, end, detail))
    return holes


def span_holes(file: _File) -> list[Hole]:
    """Every (start token, end token) pair is too many; one random length per start token."""
    holes = []
    tokens = file.tokens
    for index, (start, _, kind) in enumerate(tokens):
        if file.is_comment(kind):
            continue
        first_line = file.line_of(start)
        ends = []
        for _, end, later_kind in tokens[index:]:
            if file.is_comment(later_kind) or end - start > MAX_SPAN_CHARS:
                break
            if file.line_of(end) - first_line >= MAX_SPAN_LINES:
                break
            ends.append(end)
        # A deterministic pseudo-random length per start keeps this linear in the file size.
        if ends:
            end = ends[(start * 2654435761) % len(ends)]
            if _WORD.search(file.text[start:end]):
                detail = "multi-line" if "\n" in file.text[start:end] else "single-line"
                holes.append(Hole(start, end, detail))
    return holes


def block_holes(file: _File) -> list[Hole]:
    query = BODY_QUERIES.get(file.spec.id)
    if query is None:
        return []
    holes = []
    for detail, nodes in syntax.captures(file.spec, file.tree.root_node, query).items():
        for node in nodes:
            hole = _body_hole(file, file.char(node.start_byte), file.char(node.end_byte))
            if hole is not None:
                holes.append(Hole(hole[0], hole[1], detail))
    return sorted(holes, key=lambda h: h.start)


def _body_hole(file: _File, start: int, end: int) -> tuple[int, int] | None:
    """The body's statements from the first one's code to the last one's line end.

    Brace bodies need `{` to end its line and `}` to start its own; indented
    bodies (Python) must start on a new line after the `:` line."""
    text = file.text
    if file.spec.indent_blocks:
        first_line, last_line = file.line_of(start), file.line_of(max(start, end - 1))
        opener_line = first_line - 1
        if opener_line < 0 or text[file.line_starts[first_line] : start].strip():
            return None  # `if x: return` on one line
    else:
        open_line, close_line = file.line_of(start), file.line_of(max(start, end - 1))
        if text[start + 1 : file.line_end(open_line)].strip():
            return None  # code after `{` on its line
        if text[file.line_starts[close_line] : end - 1].strip():
            return None  # code before `}` on its line
        first_line, last_line = open_line + 1, close_line - 1
    while (
        first_line <= last_line and not text[file.line_starts[first_line] : file.line_end(first_line)].strip()
    ):
        first_line += 1
    while (
        last_line >= first_line and not text[file.line_starts[last_line] : file.line_end(last_line)].strip()
    ):
        last_line -= 1
    if first_line > last_line:
        return None
    line_text = text[file.line_starts[first_line] : file.line_end(first_line)]
    hole_start = file.line_starts[first_line] + len(line_text) - len(line_text.lstrip(" \t"))
    hole_end = file.line_end(last_line)
    body = text[hole_start:hole_end]
    if body.count("\n") + 1 > MAX_BLOCK_LINES or len(body) > MAX_BLOCK_CHARS:
        return None
    return hole_start, hole_end


HOLE_FINDERS: dict[HoleKind, Callable[[_File], list[Hole]]] = {
    HoleKind.LINE: line_holes,
    HoleKind.MIDLINE: midline_holes,
    HoleKind.BLOCK: block_holes,
    HoleKind.SPAN: span_holes,
}


# -- tasks ------------------------------------------------------------------------------------------


def parse_clean(source: SourceFile) -> _File | None:
    """The parsed file, or None when it cannot be read or does not parse without errors."""
    text = read_source(source.path)
    return None if text is None else parse_text(source.language, text)


def parse_text(language: str, text: str) -> _File | None:
    """The parsed text, or None for a language without a grammar or text with syntax errors."""
    spec = language_for_id(language)
    if spec is None:
        return None
    tree = syntax.parse(spec, text.encode("utf-8"))
    if tree.root_node.has_error:
        return None
    return _File(spec, text, tree)


def make_task(source: SourceFile, file: _File, kind: HoleKind, hole: Hole) -> Task | None:
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
        id=f"{kind.value}:{source.key}:{line + 1}:{column + 1}",
        language=source.language,
        lsp_language_id=lsp_language_id_for_path(str(source.path)),
        kind=kind,
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
    kinds: Sequence[HoleKind] = ALL_KINDS,
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
                task = make_task(source, file, kind, hole)
                if task is not None:
                    found[kind].append(task)
                    picked += 1
    return [task for kind in kinds for task in found[kind]]
