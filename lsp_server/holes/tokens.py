"""Holes on token boundaries: whole lines, rests of lines, token runs, and bodies.

These never start or end inside a comment or string, never contain a
comment (the line-wise kinds), and always contain a word character. The
evaluation cuts its tasks with them (`lsp_server.evaluation.tasks`).
"""

from __future__ import annotations

import itertools
import re

from lsp_server import syntax
from lsp_server.holes import Hole, HoleKind
from lsp_server.holes.nodes import documented_bodies
from lsp_server.holes.parsed import ParsedFile

_WORD = re.compile(r"\w")
MAX_SPAN_CHARS = 160
MAX_SPAN_LINES = 3
MAX_BLOCK_LINES = 12
MAX_BLOCK_CHARS = 600
"""Bodies a completion of the server's token budget (160) can plausibly write."""

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


def _tokens_by_line(file: ParsedFile) -> dict[int, list[tuple[int, int, str]]]:
    lines: dict[int, list[tuple[int, int, str]]] = {}
    for token in file.tokens:
        lines.setdefault(file.line_of(token[0]), []).append(token)
    return lines


def clean_lines(file: ParsedFile) -> dict[int, list[tuple[int, int, str]]]:
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


def line_holes(file: ParsedFile) -> list[Hole]:
    """The code of each clean line: the cursor after the indentation."""
    holes = []
    for line, tokens in clean_lines(file).items():
        end = file.line_end(line)
        code = file.text[tokens[0][0] : end]
        if len(code.strip()) >= 3 and _WORD.search(code):
            holes.append(Hole(tokens[0][0], end, HoleKind.LINE, "line"))
    return holes


def midline_holes(file: ParsedFile) -> list[Hole]:
    """The rest of each clean line from each token boundary (either side of a blank)."""
    holes = []
    for line, tokens in clean_lines(file).items():
        end = file.line_end(line)
        for previous, token in itertools.pairwise(tokens):
            if previous[1] == token[0]:
                starts = [(token[0], "adjacent")]
            else:  # either side of the blank: before it, the model must write it
                starts = [(previous[1], "before-blank"), (token[0], "after-blank")]
            for start, detail in starts:
                if _WORD.search(file.text[start:end]):
                    holes.append(Hole(start, end, HoleKind.MIDLINE, detail))
    return holes


def span_holes(file: ParsedFile) -> list[Hole]:
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
                holes.append(Hole(start, end, HoleKind.SPAN, detail))
    return holes


def block_holes(file: ParsedFile) -> list[Hole]:
    """The statements of function, loop and branch bodies (BODY_QUERIES), by start."""
    query = BODY_QUERIES.get(file.spec.id)
    if query is None:
        return []
    holes = []
    for detail, nodes in syntax.captures(file.spec, file.tree.root_node, query).items():
        for node in nodes:
            hole = _body_hole(file, file.char(node.start_byte), file.char(node.end_byte))
            if hole is not None:
                holes.append(Hole(hole[0], hole[1], HoleKind.BLOCK, detail))
    return sorted(holes, key=lambda h: h.start)


def comment_code_holes(file: ParsedFile) -> list[Hole]:
    """Function bodies written after their documentation (a docstring, or a comment on the line
    above the function: `nodes.documented_bodies`), as block holes are cut: the cursor on the
    first statement's line after its indentation, where an editor leaves it after Enter at the
    end of the docstring or of the opening line."""
    holes = []
    for documented in documented_bodies(file, MAX_BLOCK_LINES, MAX_BLOCK_CHARS):
        first_line = file.line_of(documented.start)
        last_line = file.line_of(max(documented.start, documented.end - 1))
        hole = _lines_hole(file, first_line, last_line)
        if hole is not None:
            holes.append(Hole(hole[0], hole[1], HoleKind.COMMENT_CODE, documented.detail))
    return holes


def _body_hole(file: ParsedFile, start: int, end: int) -> tuple[int, int] | None:
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
    return _lines_hole(file, first_line, last_line)


def _lines_hole(file: ParsedFile, first_line: int, last_line: int) -> tuple[int, int] | None:
    """Lines `first_line`..`last_line` without the blank ones at either end, from the first
    one's code to the last one's end, if short enough for a block."""
    text = file.text
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
