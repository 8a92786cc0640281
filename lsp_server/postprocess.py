"""Raw model text -> the completion a user sees, or nothing (pure).

The model (especially one without FIM tokens, which never saw the suffix)
often writes past the hole: it reproduces the closing bracket that is already
to the right of the cursor, or the lines below. Each step here removes one
such failure; `inkling eval` measures what each is worth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from lsp_server.context import CompletionContext, Mode, stop_cut


class ParseCheck(Protocol):
    """Syntax errors in the file with a candidate inserted, and without any."""

    baseline: int

    def __call__(self, candidate: str) -> int: ...

    def errors_from_cursor(self, candidate: str) -> int:
        """Those of the errors that end at or after the cursor: the only ones a shorter
        candidate can mend (an unfinished line elsewhere in the file is not one)."""
        ...


@dataclass(frozen=True)
class Finished:
    text: str
    steps: tuple[str, ...]
    """Which post-processing steps changed the text (for evaluation and logs)."""


def finish(
    context: CompletionContext,
    raw: str,
    *,
    complete: bool = True,
    parses: ParseCheck | None = None,
) -> Finished | None:
    """Post-process `raw`; `complete` is False when generation ran out of budget."""
    steps: list[str] = []
    text = raw

    cut = stop_cut(context, text + "\n") if context.mode is Mode.BLOCK else stop_cut(context, text)
    if cut is not None and cut < len(text):
        text = text[:cut]
        steps.append("stop")

    if context.mode is Mode.BLOCK:
        if not complete and "\n" in text:
            text = text[: text.rfind("\n")]
            steps.append("drop-incomplete-line")
        trimmed = _drop_suffix_duplicate_lines(text, context.suffix)
        if trimmed != text:
            text = trimmed
            steps.append("suffix-lines")
    else:
        trimmed = trim_suffix_overlap(text, context.line_suffix)
        if trimmed != text:
            text = trimmed
            steps.append("suffix-overlap")

    stripped = _strip_trailing_whitespace(text)
    if stripped != text:
        text = stripped
        steps.append("whitespace")

    if not text.strip():
        return None
    right = context.line_suffix.strip()
    if context.mode is Mode.INLINE and right and right.startswith(text.strip()):
        return None  # it only repeats what is already to the right of the cursor
    if _is_repetition(context, text):
        return None

    if parses is not None:
        errors = parses(text)
        closed = _best_closing(context, text, parses)
        if closed is not None and closed[1] < errors:
            text, errors = closed
            steps.append("balance")
        if errors > parses.baseline:
            shorter = _longest_parsing_prefix(context, text, parses, parses.baseline)
            if shorter is None:
                return None
            text = shorter
            steps.append("parse")
        elif errors and parses.errors_from_cursor(text):
            shorter = _fewer_errors_prefix(context, text, parses, errors)
            if shorter is not None:
                text = shorter
                steps.append("parse-tail")
    return Finished(text, tuple(steps))


def _fewer_errors_prefix(
    context: CompletionContext, text: str, parses: ParseCheck, errors: int
) -> str | None:
    """A shorter completion that leaves fewer errors in the file than the whole one does.

    The file with the hole often has an error of its own (an unfinished line), and a
    completion that fixes it and then adds one of its own (`digest, p []byte) { ... }`
    ending a Go declaration that has no body) breaks the file no more than the hole
    did: the rule above keeps it. Its tail is what the shorter one does without. Plain
    prefixes only, leaving no more brackets open than the whole: closing what the tail
    opened (`{}`), or stopping inside it (`subscribe(x, (`), would be a new guess."""
    return _longest_parsing_prefix(context, text, parses, errors - 1, plain=True)


def trim_suffix_overlap(text: str, line_suffix: str) -> str:
    """Drop the end of an inline completion that the rest of the line already has."""
    right = line_suffix.strip()
    if not right or not text:
        return text
    body = text.rstrip()
    if body.endswith(right):
        return body[: len(body) - len(right)]
    # The completion ends with the start of the right side: `foo(a, b)` + `):`.
    for size in range(min(len(right), len(body)), 0, -1):
        if body.endswith(right[:size]) and _closes_only(right[:size]):
            return body[: len(body) - size]
    return text


def _closes_only(fragment: str) -> bool:
    return all(ch in ")]}>\"'`;:, " for ch in fragment)


def _drop_suffix_duplicate_lines(text: str, suffix: str) -> str:
    """Remove trailing completion lines that repeat the first lines below the cursor."""
    below = [line.rstrip() for line in suffix.split("\n")[1:] if line.strip()][:8]
    if not below:
        return text
    lines = text.split("\n")
    for count in range(min(len(lines) - 1, len(below)), 0, -1):
        tail = [line.rstrip() for line in lines[-count:]]
        if tail == below[:count]:
            return "\n".join(lines[:-count])
    return text


def _strip_trailing_whitespace(text: str) -> str:
    lines = [line.rstrip() for line in text.split("\n")]
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _is_repetition(context: CompletionContext, text: str) -> bool:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) >= 3 and len(set(lines)) == 1:
        return True
    first_new = (context.line_prefix + text.split("\n", maxsplit=1)[0]).strip()
    previous = [ln.strip() for ln in context.prefix.split("\n")[:-1] if ln.strip()]
    following = [ln.strip() for ln in context.suffix.split("\n")[1:] if ln.strip()]
    # Writing the line that is right above or right below again helps nobody.
    if context.mode is Mode.INLINE and not context.line_suffix.strip():
        if previous and first_new == previous[-1] and len(first_new) > 3:
            return True
        if following and first_new == following[0] and len(first_new) > 3:
            return True
    return False


def _longest_parsing_prefix(
    context: CompletionContext,
    text: str,
    parses: ParseCheck,
    limit: int,
    *,
    plain: bool = False,
) -> str | None:
    """Shorten line by line (block) or word by word (inline) until the file has at most
    `limit` errors, closing a prefix's open brackets where that helps; `plain`: plain
    prefixes only, none leaving more brackets open than `text` does."""
    comment = context.language.line_comment if context.language else None
    opened = len(unclosed(text, comment)[0]) if plain else 0

    def fitting(candidate: str) -> str | None:
        if not candidate.strip():
            return None
        if plain:
            if len(unclosed(candidate, comment)[0]) > opened:
                return None
            return candidate if parses(candidate) <= limit else None
        if parses(candidate) <= limit:
            return candidate
        return _closed_that_parses(context, candidate, parses, limit)

    if context.mode is Mode.BLOCK:
        lines = text.split("\n")
        for end in range(len(lines) - 1, 0, -1):
            found = fitting(_strip_trailing_whitespace("\n".join(lines[:end])))
            if found is not None:
                return found
        return None
    cuts = sorted({i for i, ch in enumerate(text) if ch in " ,;)" and i > 0}, reverse=True)
    for cut in cuts[:12]:
        found = fitting(text[:cut].rstrip())
        if found is not None:
            return found
    return None


_PAIRS = {"(": ")", "[": "]", "{": "}"}


def unclosed(text: str, line_comment: str | None) -> tuple[list[tuple[str, int]], str | None]:
    """Brackets the text opens and does not close (with the line each opened on),
    and the quote of a string left open at its end. Strings and comments are skipped."""
    stack: list[tuple[str, int]] = []
    quote: str | None = None
    line = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\n":
            line += 1
            if quote in ("'", '"'):
                quote = None  # a plain string does not span lines
        if quote is not None:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif line_comment and text.startswith(line_comment, index):
            end = text.find("\n", index)
            index = len(text) if end < 0 else end
            continue
        elif char in "\"'`":
            quote = char
        elif char in _PAIRS:
            stack.append((char, line))
        elif char in _PAIRS.values() and stack and _PAIRS[stack[-1][0]] == char:
            stack.pop()
        index += 1
    return stack, quote


def closings(context: CompletionContext, text: str) -> list[str]:
    """The completion with its open brackets (and an open string) closed: first
    all of them, then fewer (the text after the cursor may close the outer
    ones). Brackets close on the completion's last line, except a `{` that
    ended a line in a block, which closes on a new line at that line's
    indentation, the way a person writes it. The parse check picks one."""
    comment = context.language.line_comment if context.language else None
    stack, quote = unclosed(text, comment)
    if not stack and quote is None:
        return []
    lines = text.split("\n")
    base = text + (quote or "")
    variants = []
    for keep_open in range(len(stack) + (1 if quote else 0)):
        closed = base
        for opener, line in reversed(stack[keep_open:]):
            opened_on = lines[line]
            if opener == "{" and context.mode is Mode.BLOCK and opened_on.rstrip().endswith("{"):
                indent = (
                    context.indent if line == 0 else opened_on[: len(opened_on) - len(opened_on.lstrip())]
                )
                closed += "\n" + indent + "}"
            else:
                closed += _PAIRS[opener]
        if closed != text:
            variants.append(closed)
    return list(dict.fromkeys(variants))


def _best_closing(context: CompletionContext, text: str, parses: ParseCheck) -> tuple[str, int] | None:
    """The closing variant with the fewest syntax errors (the first of equals)."""
    scored = [(parses(variant), index, variant) for index, variant in enumerate(closings(context, text))]
    if not scored:
        return None
    errors, _, variant = min(scored)
    return variant, errors


def _closed_that_parses(context: CompletionContext, text: str, parses: ParseCheck, limit: int) -> str | None:
    best = _best_closing(context, text, parses)
    return best[0] if best is not None and best[1] <= limit else None
