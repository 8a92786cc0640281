"""(document text, cursor) -> what to complete: prefix, suffix, mode, stop rules.

Pure: plain values in, a dataclass out. The rules, per language family:

* skip   - the cursor sits inside an identifier (a word character on both
           sides), or inside a string or comment that continues to the right
           of the cursor: a completion there would have to be spliced into a
           token the user is still typing.
* inline - there is code to the right of the cursor on the same line (fill
           the gap), or the line has code to the left (finish the line), or
           the cursor is on a blank line inside a body or bracket that already has
           statements or elements (write the next one). Generation stops at the end of
           the line, or earlier where it closes a bracket the line's right
           side already closes, or where it reaches the text the right side
           begins with.
* block  - the cursor is on a blank line in an empty body (a function's, class's,
           loop's, branch's, closure's, `case` arm's: comments and a docstring do not
           count) or an empty bracket (argument list, collection literal). Where the
           language has a grammar the syntax decides (`placement.py`: the file parsed
           with a probe at the cursor, the container found by the rules table in
           `languages.py`); else the text: the line before opens a body (`:` in
           Python, `{` in brace languages) and the next non-blank line is not indented
           deeper (or is its closing brace). Generation stops at the end of that body:
           a line indented no deeper than the opener (Python), a closing bracket that
           balances the block (brace languages), or where the container ends in the
           tree of the file with the completion in place (a `case` arm, a bracket).

A language without a grammar follows the same rules on text alone.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from lsp_server import syntax
from lsp_server.languages import LanguageSpec
from lsp_server.placement import EnclosingEnd, Placement, Slot, place

_WORD = re.compile(r"\w")
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")": "(", "]": "[", "}": "{"}


class Mode(enum.StrEnum):
    INLINE = "inline"
    BLOCK = "block"
    SKIP = "skip"


@dataclass(frozen=True)
class CompletionContext:
    """Everything the prompt builder and post-processor need about the cursor."""

    prefix: str
    suffix: str
    line_prefix: str
    line_suffix: str
    mode: Mode
    reason: str
    language: LanguageSpec | None
    indent: str
    """Indentation of the cursor line (what the first generated line continues)."""
    block_indent: str | None = None
    """Block mode: indentation of the line that opened the body."""
    end: EnclosingEnd | None = field(default=None, compare=False, repr=False)
    """Block mode, where the syntax tree placed the cursor: where a completion leaves the
    body (or bracket) it started in, read from the tree with the completion in place."""

    @property
    def offset(self) -> int:
        return len(self.prefix)


def indentation(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(indent: str, tab_size: int = 4) -> int:
    return sum(tab_size if ch == "\t" else 1 for ch in indent)


def _line_bounds(text: str, offset: int) -> tuple[int, int]:
    start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    ends = [found for found in (text.find("\n", offset), text.find("\r", offset)) if found >= 0]
    return start, min(ends, default=len(text))


def _previous_nonblank_line(prefix_before_line: str) -> str | None:
    for line in reversed(prefix_before_line.splitlines()):
        if line.strip():
            return line
    return None


def _next_nonblank_line(suffix_after_line: str) -> str | None:
    for line in suffix_after_line.splitlines():
        if line.strip():
            return line
    return None


def _strip_line_comment(line: str, language: LanguageSpec | None) -> str:
    marker = language.line_comment if language else None
    if marker and marker in line:
        # Good enough for a trailing comment after an opener; strings are rare there.
        return line[: line.index(marker)]
    return line


def opens_body(line: str, language: LanguageSpec | None) -> bool:
    code = _strip_line_comment(line, language).rstrip()
    if language is None:
        return code.endswith((":", "{"))
    if language.indent_blocks:
        return code.endswith(":")
    return code.endswith("{")


def _inside_token_continuing_right(
    tree: syntax.Tree | None, language: LanguageSpec | None, byte_offset: int, line_suffix: str
) -> str | None:
    """'string' or 'comment' if the cursor is inside one that goes on past it."""
    if tree is None or language is None or not line_suffix.strip():
        return None
    node = syntax.node_at(tree, byte_offset)
    for ancestor in syntax.ancestors(node):
        kind = ancestor.type
        if kind in language.string_kinds or kind in language.comment_kinds:
            inside = ancestor.start_byte < byte_offset < ancestor.end_byte
            if inside:
                return "comment" if kind in language.comment_kinds else "string"
    return None


def build_context(
    text: str,
    offset: int,
    language: LanguageSpec | None,
    tree: syntax.Tree | None = None,
    byte_offset: int | None = None,
) -> CompletionContext:
    """Decide the mode at `offset` (a str index into `text`)."""
    offset = max(0, min(offset, len(text)))
    prefix, suffix = text[:offset], text[offset:]
    line_start, line_end = _line_bounds(text, offset)
    line_prefix, line_suffix = text[line_start:offset], text[offset:line_end]
    indent = indentation(line_prefix if line_prefix.strip() else text[line_start:line_end])
    if not line_prefix.strip():
        indent = line_prefix

    def make(
        mode: Mode, reason: str, block_indent: str | None = None, end: EnclosingEnd | None = None
    ) -> CompletionContext:
        return CompletionContext(
            prefix=prefix,
            suffix=suffix,
            line_prefix=line_prefix,
            line_suffix=line_suffix,
            mode=mode,
            reason=reason,
            language=language,
            indent=indent,
            block_indent=block_indent,
            end=end,
        )

    before = prefix[-1:] if prefix else ""
    after = suffix[:1]
    if before and after and _WORD.match(before) and _WORD.match(after):
        return make(Mode.SKIP, "inside an identifier")
    if byte_offset is None:
        byte_offset = len(prefix.encode("utf-8", "surrogatepass"))
    inside = _inside_token_continuing_right(tree, language, byte_offset, line_suffix)
    if inside is not None:
        return make(Mode.SKIP, f"inside a {inside} that continues to the right")

    if line_suffix.strip():
        if not line_prefix.strip():
            return make(Mode.INLINE, "before the code of a line: fill up to it")
        return make(Mode.INLINE, "code to the right of the cursor")
    if line_prefix.strip():
        return make(Mode.INLINE, "finish the line")

    placement = place(language, text, offset, tree) if language is not None and tree is not None else None
    if placement is not None:
        return _from_placement(placement, text, offset, language, tree, make)
    opener = _previous_nonblank_line(prefix[:line_start])
    if opener is not None and opens_body(opener, language):
        opener_indent = indentation(opener)
        following = _next_nonblank_line(text[line_end:])
        if _body_is_empty(opener_indent, following, language):
            return make(Mode.BLOCK, "empty body after an opening line", opener_indent)
    return make(Mode.INLINE, "blank line: the next statement")


_WHOLE = (Slot.BODY, Slot.COLLECTION)
"""Containers an empty one of which gets all of its content. Not argument lists: asked
for a whole argument list on its own lines, the model wrote on past the call (3 of 3
held-out line holes in the measurement of docs/benchmarks.md)."""


def _from_placement(
    placement: Placement,
    text: str,
    offset: int,
    language: LanguageSpec | None,
    tree: syntax.Tree | None,
    make: Callable[..., CompletionContext],
) -> CompletionContext:
    """A blank line, decided by its container: an empty body or bracket gets all of its
    content (block mode, ending where the container ends); elsewhere the next statement.
    Where the opener has a textual end marker (a Python `:` and dedent, a `{` and its `}`)
    the text rules end the block as fast; elsewhere (a `case 1:` arm, a bracket) the tree
    of the file with the completion in place does, at each line's end (a few ms a line)."""
    if placement.empty and placement.slot in _WHOLE and language is not None:
        opener = text.split("\n", placement.opener_row + 1)[placement.opener_row]
        marked = placement.slot is Slot.BODY and opens_body(opener, language)
        end = None if marked else EnclosingEnd(language, text, offset, placement, tree)
        return make(Mode.BLOCK, placement.describes, indentation(opener), end)
    what = "statement" if placement.slot is Slot.BODY else "element"
    return make(Mode.INLINE, f"blank line: the next {what} ({placement.describes})")


def _body_is_empty(opener_indent: str, following: str | None, language: LanguageSpec | None) -> bool:
    if following is None:
        return True
    deeper = indent_width(indentation(following)) > indent_width(opener_indent)
    if language is not None and not language.indent_blocks:
        return following.strip().startswith("}") or not deeper
    return not deeper


# -- stop rules ----------------------------------------------------------------


def closing_cut(text: str, line_suffix: str) -> int | None:
    """Where the completion closes a bracket that the line's right side closes already.

    Scans brackets opened inside the completion; the first closer that would
    close one opened before the cursor marks the start of text the suffix
    already has (when the suffix starts with that closer)."""
    right = line_suffix.lstrip()
    if not right or right[0] not in _CLOSERS:
        return None
    depth = 0
    quote: str | None = None
    for index, char in enumerate(text):
        if quote:
            if char == quote and text[index - 1 : index] != "\\":
                quote = None
            continue
        if char in "\"'`":
            quote = char
        elif char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            if depth == 0:
                return index if char == right[0] else None
            depth -= 1
    return None


def first_statement_end(text: str) -> int | None:
    """The first line break after some code where brackets and strings are all closed
    (a docstring or an `if (...) {` runs on to its end), or None before there is one.
    One comment line may come before that code; a second one ends the text after the
    first: a run of comment lines is prose, not the statement that was asked for."""
    depth, quote, index, code = 0, "", 0, False
    comment_end: int | None = None
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if text.startswith(quote, index):
                index += len(quote)
                quote = ""
                continue
            if char == "\n" and len(quote) == 1 and quote != "`":
                quote = ""  # an unterminated one-line string: the line ends it
            else:
                index += 1
                continue
        if char == "\n":
            if code and depth <= 0:
                return index
        elif text.startswith(("#", "//"), index):
            if not code and comment_end is not None:
                return comment_end
            newline = text.find("\n", index)
            if newline < 0:
                return None
            if not code:
                comment_end = newline
            index = newline
            continue
        elif not char.isspace():
            code = True
            if text.startswith(('"""', "'''"), index):
                quote = text[index : index + 3]
                index += 3
                continue
            if char in "\"'`":
                quote = char
            elif char in _OPENERS:
                depth += 1
            elif char in _CLOSERS:
                depth -= 1
        index += 1
    return None


def reaching_cut(text: str, line_suffix: str) -> int | None:
    """Where the completion starts writing what the right side of the line already says."""
    right = line_suffix.strip()
    head = right[:12]
    if len(head) < 3:
        return None  # too short to recognise; brackets are handled by closing_cut
    index = text.find(head)
    return None if index < 0 else len(text[:index].rstrip(" \t"))


def stop_cut(context: CompletionContext, text: str) -> int | None:
    """Where to cut the generated `text` so far, or None to keep generating."""
    if context.mode is Mode.BLOCK:
        return _block_cut(context, text)
    newline = text.find("\n")
    line = text if newline < 0 else text[:newline]
    if context.line_suffix.strip():
        cuts = [
            c
            for c in (closing_cut(line, context.line_suffix), reaching_cut(line, context.line_suffix))
            if c is not None
        ]
        if cuts:
            return min(cuts)
    return newline if newline >= 0 else None


def _block_cut(context: CompletionContext, text: str) -> int | None:
    tree_cut = context.end.cut(text) if context.end is not None else None
    cuts = [cut for cut in (_end_of_block(context, text), loop_cut(text), tree_cut) if cut is not None]
    return min(cuts) if cuts else None


def loop_cut(text: str) -> int | None:
    """Where a block starts writing its own lines again: a run of at least two non-blank
    lines followed at once by the same run (a small model short of context loops)."""
    lines = text.split("\n")[:-1]  # complete lines only
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    keys = [line.strip() for line in lines]
    for end in range(4, len(keys) + 1):
        for period in range(2, end // 2 + 1):
            run = keys[end - period : end]
            if keys[end - 2 * period : end - period] == run and sum(1 for key in run if key) >= 2:
                return starts[end - period]
    return None


def _end_of_block(context: CompletionContext, text: str) -> int | None:
    language = context.language
    opener_width = indent_width(context.block_indent or "")
    brace = language is not None and not language.indent_blocks
    depth = 0
    position = 0
    lines = text.split("\n")
    # Only complete lines are judged; the last one may still be growing.
    for number, line in enumerate(lines[:-1]):
        if number > 0 and line.strip():
            if brace:
                stripped = line.strip()
                if stripped.startswith(("}", ")", "]")) and depth <= 0:
                    return position
            elif indent_width(indentation(line)) <= opener_width:
                return position
        if brace:
            depth += _bracket_delta(line)
        position += len(line) + 1
    return None


def _bracket_delta(line: str) -> int:
    return sum(1 for c in line if c in _OPENERS) - sum(1 for c in line if c in _CLOSERS)
