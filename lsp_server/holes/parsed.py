"""A source file parsed once, with character offsets for its tokens and lines.

tree-sitter counts bytes; holes, tasks and training examples count characters
(str indices), so every cutter converts through `ParsedFile.char`.
"""

from __future__ import annotations

from functools import cached_property

from lsp_server import syntax
from lsp_server.languages import LanguageSpec, language_for_id


class ParsedFile:
    """A parsed source file with character offsets for its tokens and lines."""

    def __init__(self, spec: LanguageSpec, text: str, tree: syntax.Tree) -> None:
        self.spec = spec
        self.text = text
        self.tree = tree
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        self._char_of: list[int] | None = None if text.isascii() else byte_to_char(text)
        self.comment_kinds = spec.comment_kinds

    @cached_property
    def tokens(self) -> list[tuple[int, int, str]]:
        """(start, end, node type) of every leaf; strings and comments count as one token."""
        atomic = self.spec.string_kinds | self.spec.comment_kinds
        return [
            (self.char(leaf.start_byte), self.char(leaf.end_byte), leaf.type)
            for leaf in syntax.leaves(self.tree.root_node, atomic)
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


def byte_to_char(text: str) -> list[int]:
    """For each UTF-8 byte offset of `text` (and its end), the character it belongs to."""
    table: list[int] = []
    for index, char in enumerate(text):
        table.extend([index] * len(char.encode("utf-8", "surrogatepass")))
    table.append(len(text))
    return table


def parse_text(language: str, text: str) -> ParsedFile | None:
    """The parsed text, or None for a language without a grammar or text with syntax errors."""
    spec = language_for_id(language)
    if spec is None:
        return None
    tree = syntax.parse(spec, text.encode("utf-8"))
    if tree.root_node.has_error:
        return None
    return ParsedFile(spec, text, tree)
