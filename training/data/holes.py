"""Where to punch holes: spans the server would be asked to complete.

The server completes in three shapes (see `lsp_server.context`): finish or
fill a line, write the next statement(s) on a blank line, and write the body
of an empty block. Syntax-aligned holes come from the same tree-sitter
grammars and node kinds the server uses, so the model practises exactly
those shapes; random character spans keep it robust to anything else.

Offsets are str indices. Line holes end before the newline, as the server's
cursor sits on a line whose newline stays in the suffix.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from lsp_server import syntax
from lsp_server.context import opens_body
from lsp_server.languages import LanguageSpec, language_for_id

HOLE_KINDS = ("random", "line", "line_rest", "expression", "block")

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


@dataclass(frozen=True)
class Hole:
    start: int
    end: int
    kind: str


@dataclass
class Spans:
    """Syntax-aligned candidate spans of one file, by kind."""

    by_kind: dict[str, list[Hole]] = field(default_factory=dict)
    line_cuts: list[tuple[int, int]] = field(default_factory=list)
    """(cut, line end) pairs inside single-line statements: 'finish the line' holes."""
    documented: list[Hole] = field(default_factory=list)
    """Function bodies after a docstring or a leading comment (comment-to-code)."""

    def add(self, hole: Hole) -> None:
        self.by_kind.setdefault(hole.kind, []).append(hole)


class _Offsets:
    """tree-sitter byte offsets -> str indices."""

    def __init__(self, text: str) -> None:
        self.ascii = text.isascii()
        self.table: list[int] = []
        if not self.ascii:
            for index, char in enumerate(text):
                self.table.extend([index] * len(char.encode("utf-8", "surrogatepass")))
            self.table.append(len(text))

    def char(self, byte: int) -> int:
        return byte if self.ascii else self.table[min(byte, len(self.table) - 1)]


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    return len(text) if end < 0 else end


def find_spans(
    text: str, language_id: str | None, max_block_lines: int = 30, max_middle_chars: int = 1200
) -> Spans:
    """All syntax-aligned candidates in `text` (none for a language without a grammar)."""
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
    offsets = _Offsets(text)
    root = tree.root_node
    for node in _walk(root):
        if node.is_error or node.has_error:
            continue
        start, end = offsets.char(node.start_byte), offsets.char(node.end_byte)
        parent = node.parent
        if (
            parent is not None
            and node.is_named
            and (parent.type in spec.body_kinds or parent == root)
            and node.type not in spec.comment_kinds
        ):
            _statement(text, node, start, end, offsets, spans)
        if node.type in spec.body_kinds:
            hole = _block(text, spec, start, end, max_block_lines, max_middle_chars)
            if hole is not None:
                spans.add(hole)
        if (
            node.type in _EXPRESSION_KINDS
            and node.start_point[0] == node.end_point[0]
            and 3 <= end - start <= 120
        ):
            spans.add(Hole(start, end, "expression"))
        if node.type in spec.definition_kinds and ("function" in node.type or "method" in node.type):
            hole = _documented_body(text, spec, node, offsets, max_block_lines, max_middle_chars)
            if hole is not None:
                spans.documented.append(hole)
    _group_statements(text, spans)
    return spans


def _walk(root: syntax.Node) -> Iterator[syntax.Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def _statement(text: str, node: syntax.Node, start: int, end: int, offsets: _Offsets, spans: Spans) -> None:
    line_start = _line_start(text, start)
    if text[line_start:start].strip() or text[end : _line_end(text, end)].strip():
        return  # not alone on its lines
    spans.add(Hole(line_start, _line_end(text, end), "statement"))
    if node.start_point[0] != node.end_point[0]:
        return
    cuts = sorted({offsets.char(child.start_byte) for child in _walk(node)} - {start})
    line_end = _line_end(text, end)
    spans.line_cuts.extend((cut, line_end) for cut in cuts if cut < line_end)


def _group_statements(text: str, spans: Spans) -> None:
    """'line' holes: one to three consecutive whole statements, at most 8 lines."""
    statements = sorted(spans.by_kind.pop("statement", []), key=lambda h: h.start)
    for index, first in enumerate(statements):
        for count in (1, 2, 3):
            if index + count > len(statements):
                break
            last = statements[index + count - 1]
            between = text[first.start : last.end]
            if between.count("\n") >= 8:
                break
            if count > 1:
                previous = statements[index + count - 2]
                if text[previous.end : last.start].count("\n") != 1:
                    break  # not adjacent lines
            spans.add(Hole(first.start, last.end, "line"))


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
    return Hole(body_start, body_end, "block")


def _documented_body(
    text: str,
    spec: LanguageSpec,
    node: syntax.Node,
    offsets: _Offsets,
    max_lines: int,
    max_chars: int,
) -> Hole | None:
    body = node.child_by_field_name("body")
    if body is None:
        return None
    start, end = offsets.char(body.start_byte), offsets.char(body.end_byte)
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
            after_docstring = _line_end(text, offsets.char(first.end_byte)) + 1
            if after_docstring < block.end and text[after_docstring : block.end].strip():
                return Hole(after_docstring, block.end, "comment_code")
    previous = node.prev_named_sibling
    if previous is not None and previous.type in spec.comment_kinds:
        gap = text[offsets.char(previous.end_byte) : offsets.char(node.start_byte)]
        if gap.count("\n") == 1 and not gap.strip():
            return Hole(block.start, block.end, "comment_code")
    return None


def _text_lines(text: str, spans: Spans) -> None:
    """Without a grammar: single non-blank lines are the only aligned holes."""
    position = 0
    for line in text.split("\n"):
        if line.strip():
            spans.add(Hole(position, position + len(line), "line"))
        position += len(line) + 1


def random_span(text: str, rng: random.Random, max_chars: int) -> Hole:
    """A random character span (the SantaCoder recipe), never empty."""
    start = rng.randrange(0, max(1, len(text) - 1))
    length = rng.randint(1, max(1, min(max_chars, len(text) - start)))
    return Hole(start, start + length, "random")


def pick(spans: Spans, kind: str, text: str, rng: random.Random, max_random_chars: int) -> Hole | None:
    """One hole of `kind`, or None when the file has none of that shape."""
    if kind == "random":
        return random_span(text, rng, max_random_chars) if len(text) > 1 else None
    if kind == "line_rest":
        if not spans.line_cuts:
            return None
        cut, end = rng.choice(spans.line_cuts)
        return Hole(cut, end, "line_rest")
    if kind == "comment_code":
        return rng.choice(spans.documented) if spans.documented else None
    candidates = spans.by_kind.get(kind)
    return rng.choice(candidates) if candidates else None
