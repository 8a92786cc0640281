"""Holes on syntax nodes: statements, their rests, expressions, bodies; and random spans.

The server completes in three shapes (see `lsp_server.context`): finish or
fill a line, write the next statement(s) on a blank line, and write the body
of an empty block. These holes come from the same tree-sitter grammars and
node kinds the server uses, so a model trained on them (`training.data`)
practises exactly those shapes; random character spans keep it robust to
anything else.

Offsets are str indices. Line holes end before the newline, as the server's
cursor sits on a line whose newline stays in the suffix.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from lsp_server import syntax
from lsp_server.context import opens_body
from lsp_server.holes import Hole, HoleKind
from lsp_server.holes.parsed import ParsedFile
from lsp_server.languages import LanguageSpec, language_for_id

_EXPRESSION_KINDS = frozenset(
    {
        "call",
        "call_expression",
        "argument_list",
        "arguments",
        "attribute",
        "subscript",
        "subscript_expression",
        "member_expression",
        "selector_expression",
        "field_expression",
        "index_expression",
        "list",
        "dictionary",
        "tuple",
        "array",
        "object",
        "lambda",
        "comparison_operator",
        "boolean_operator",
        "not_operator",
        "composite_literal",
        "method_invocation",
        "object_creation_expression",
        "macro_invocation",
        "generator_expression",
        "list_comprehension",
        "parenthesized_expression",
        "binary_operator",
        "binary_expression",
        "unary_operator",
        "unary_expression",
        "conditional_expression",
        "ternary_expression",
        "await",
        "await_expression",
    }
)


@dataclass
class Spans:
    """Syntax-aligned candidate holes of one file: line, block and expression holes by kind."""

    by_kind: dict[HoleKind, list[Hole]] = field(default_factory=dict)
    line_cuts: list[tuple[int, int]] = field(default_factory=list)
    """(cut, line end) pairs inside single-line statements: line_rest holes."""
    documented: list[Hole] = field(default_factory=list)
    """comment_code holes: function bodies after a docstring or a leading comment."""

    def add(self, hole: Hole) -> None:
        self.by_kind.setdefault(hole.kind, []).append(hole)


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    return len(text) if end < 0 else end


def find_spans(
    text: str, language_id: str | None, max_block_lines: int = 30, max_middle_chars: int = 1200
) -> Spans:
    """All syntax-aligned candidates in `text` (single lines only for a language without a grammar)."""
    spans = Spans()
    spec = language_for_id(language_id) if language_id else None
    if spec is None:
        _text_lines(text, spans)
        return spans
    try:
        tree = syntax.parse(spec, text.encode("utf-8", "surrogatepass"))
    except syntax.GrammarError:
        _text_lines(text, spans)
        return spans
    file = ParsedFile(spec, text, tree)
    root = tree.root_node
    statements: list[tuple[int, int]] = []
    for node in _walk(root):
        if node.is_error or node.has_error:
            continue
        start, end = file.char(node.start_byte), file.char(node.end_byte)
        parent = node.parent
        if (
            parent is not None
            and node.is_named
            and (parent.type in spec.body_kinds or parent == root)
            and node.type not in spec.comment_kinds
        ):
            _statement(file, node, start, end, statements, spans)
        if node.type in spec.body_kinds:
            hole = _block(text, spec, start, end, max_block_lines, max_middle_chars)
            if hole is not None:
                spans.add(hole)
        if (
            node.type in _EXPRESSION_KINDS
            and node.start_point[0] == node.end_point[0]
            and 3 <= end - start <= 120
        ):
            spans.add(Hole(start, end, HoleKind.EXPRESSION))
        if node.type in spec.definition_kinds and ("function" in node.type or "method" in node.type):
            hole = _documented_body(file, node, max_block_lines, max_middle_chars)
            if hole is not None:
                spans.documented.append(hole)
    _group_statements(text, statements, spans)
    return spans


def documented_bodies(file: ParsedFile, max_lines: int, max_chars: int) -> list[Hole]:
    """comment_code holes of a parsed file alone (`find_spans` collects them with the rest)."""
    holes = []
    for node in _walk(file.tree.root_node):
        if node.has_error or node.type not in file.spec.definition_kinds:
            continue
        if "function" in node.type or "method" in node.type:
            hole = _documented_body(file, node, max_lines, max_chars)
            if hole is not None:
                holes.append(hole)
    return sorted(holes, key=lambda hole: hole.start)


def _walk(root: syntax.Node) -> Iterator[syntax.Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def _statement(
    file: ParsedFile,
    node: syntax.Node,
    start: int,
    end: int,
    statements: list[tuple[int, int]],
    spans: Spans,
) -> None:
    text = file.text
    line_start = _line_start(text, start)
    if text[line_start:start].strip() or text[end : _line_end(text, end)].strip():
        return  # not alone on its lines
    statements.append((line_start, _line_end(text, end)))
    if node.start_point[0] != node.end_point[0]:
        return
    cuts = sorted({file.char(child.start_byte) for child in _walk(node)} - {start})
    line_end = _line_end(text, end)
    spans.line_cuts.extend((cut, line_end) for cut in cuts if cut < line_end)


def _group_statements(text: str, statements: list[tuple[int, int]], spans: Spans) -> None:
    """Line holes: one to three consecutive whole statements, at most 8 lines."""
    ordered = sorted(statements, key=lambda statement: statement[0])
    for index, (first_start, _) in enumerate(ordered):
        for count in (1, 2, 3):
            if index + count > len(ordered):
                break
            last_start, last_end = ordered[index + count - 1]
            between = text[first_start:last_end]
            if between.count("\n") >= 8:
                break
            if count > 1:
                previous_end = ordered[index + count - 2][1]
                if text[previous_end:last_start].count("\n") != 1:
                    break  # not adjacent lines
            spans.add(Hole(first_start, last_end, HoleKind.LINE))


def _block(
    text: str, spec: LanguageSpec, start: int, end: int, max_lines: int, max_chars: int
) -> Hole | None:
    """The whole body of a block, as the server's block mode would write it."""
    if spec.indent_blocks:
        body_start = _line_start(text, start)
        if text[body_start:start].strip():
            return None  # `if x: return` on one line
        opener = text[_line_start(text, body_start - 1) : body_start - 1] if body_start else ""
        if not opens_body(opener, spec):
            return None
        body_end = _line_end(text, end)
    else:
        if text[start : start + 1] != "{" or text[end - 1 : end] != "}":
            return None
        open_line_end = _line_end(text, start)
        close_line_start = _line_start(text, end - 1)
        if text[start + 1 : open_line_end].strip() or text[close_line_start : end - 1].strip():
            return None
        body_start = open_line_end + 1
        body_end = close_line_start - 1
        if body_end <= body_start:
            return None
    body = text[body_start:body_end]
    if not body.strip() or body.count("\n") + 1 > max_lines or len(body) > max_chars:
        return None
    return Hole(body_start, body_end, HoleKind.BLOCK)


def _documented_body(file: ParsedFile, node: syntax.Node, max_lines: int, max_chars: int) -> Hole | None:
    text, spec = file.text, file.spec
    body = node.child_by_field_name("body")
    if body is None:
        return None
    start, end = file.char(body.start_byte), file.char(body.end_byte)
    block = _block(text, spec, start, end, max_lines, max_chars)
    if block is None:
        return None
    if spec.indent_blocks and body.named_child_count > 1:
        first = body.named_children[0]
        if (
            first.type == "expression_statement"
            and first.named_children
            and first.named_children[0].type == "string"
        ):
            after_docstring = _line_end(text, file.char(first.end_byte)) + 1
            if after_docstring < block.end and text[after_docstring : block.end].strip():
                return Hole(after_docstring, block.end, HoleKind.COMMENT_CODE, "after-docstring")
    previous = node.prev_named_sibling
    if previous is not None and previous.type in spec.comment_kinds:
        gap = text[file.char(previous.end_byte) : file.char(node.start_byte)]
        if gap.count("\n") == 1 and not gap.strip():
            return Hole(block.start, block.end, HoleKind.COMMENT_CODE, "after-comment")
    return None


def _text_lines(text: str, spans: Spans) -> None:
    """Without a grammar: single non-blank lines are the only aligned holes."""
    position = 0
    for line in text.split("\n"):
        if line.strip():
            spans.add(Hole(position, position + len(line), HoleKind.LINE))
        position += len(line) + 1


def random_span(text: str, rng: random.Random, max_chars: int) -> Hole:
    """A random character span (the SantaCoder recipe), never empty."""
    start = rng.randrange(0, max(1, len(text) - 1))
    length = rng.randint(1, max(1, min(max_chars, len(text) - start)))
    return Hole(start, start + length, HoleKind.RANDOM)
