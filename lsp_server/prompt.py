"""CompletionContext + Template -> the token list the model sees, within budgets.

Windows over the document move on a grid of whole lines, not token by token:
while the user types, the first prompt token and the layout stay the same, so
the engine reuses the KV cache and evaluates only the few tokens that changed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lsp_server.context import CompletionContext
from lsp_server.templates import ContextFile, Order, Template

GRID_LINES = 16
"""Prompt windows start and end on multiples of this many lines."""
GRID_CHARS = 512
"""For a line too long for the budget, the window moves in steps of this many characters."""
_WORD_END = re.compile(r"\w$")
_HEALABLE = re.compile(r" ?[A-Za-z0-9_]+")
"""A word token (SentencePiece-style leading space allowed) that can be regenerated."""
CHARS_PER_TOKEN = 3.0
"""Inkling's one estimate of characters per token of code, deliberately low: a prompt
window sized from it starts too big rather than too small (then it is measured), and
project context sized from it stays within its token budget."""
MAX_CHARS_PER_TOKEN = 64
"""More than any vocabulary packs into one token of real text: a window longer than
budget * this cannot fit and is not tokenized (a 5 MB minified line took seconds)."""


class Tokenizer(Protocol):
    @property
    def add_bos(self) -> bool: ...

    @property
    def bos_id(self) -> int: ...

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]: ...

    def special_token_id(self, text: str) -> int | None: ...

    def token_piece(self, token: int) -> str: ...


@dataclass(frozen=True)
class Budget:
    prefix_tokens: int
    suffix_tokens: int
    n_ctx: int
    reserve: int
    """Tokens kept free for the completion itself."""


@dataclass(frozen=True)
class Prompt:
    tokens: list[int]
    prefix_text: str
    suffix_text: str
    stop_token_ids: frozenset[int]
    order: Order
    healed: str = ""
    """Text cut from the end of the prefix that the model must write again
    (token healing): trailing spaces/tabs, or the last token of a word being
    typed. Vocabularies attach a space to the word after it, and split a
    half-typed word differently from the whole word, so a prompt that ends in
    either asks for a token sequence the model has rarely seen (`sy = ` gives
    `0`; `sy =` gives ` sum(p.y for p in points)`). The engine constrains the
    first generated tokens to reproduce this text."""

    def unheal(self, generated: str) -> str | None:
        """The completion after the healed text; None if the model wrote other text."""
        if generated.startswith(self.healed):
            return generated[len(self.healed) :]
        return None


def build_prompt(
    context: CompletionContext,
    template: Template,
    tokenizer: Tokenizer,
    budget: Budget,
    *,
    path: str = "",
    extra: Sequence[ContextFile] = (),
    order: Order | None = None,
) -> Prompt:
    order = order or template.order
    room = max(64, budget.n_ctx - budget.reserve - 8)
    comment = context.language.line_comment if context.language else "#"
    context_tokens = sum(
        len(tokenizer.tokenize(piece.text)) if not piece.special else 1
        for piece in template.render_context(path, extra, comment)
    )
    prefix_budget = min(budget.prefix_tokens, max(32, room - context_tokens))
    prefix_text = _prefix_window(context.prefix, prefix_budget, tokenizer)
    kept = prefix_text.rstrip(" \t")
    healed = prefix_text[len(kept) :]
    prefix_text = kept
    suffix_text = ""
    if order != "prefix":
        used = len(tokenizer.tokenize(prefix_text))
        suffix_budget = min(budget.suffix_tokens, max(0, room - used))
        suffix_text = _suffix_window(context.suffix, suffix_budget, tokenizer)
    pieces = template.render(prefix_text, suffix_text, path=path, context=extra, comment=comment, order=order)
    tokens: list[int] = [tokenizer.bos_id] if tokenizer.add_bos and tokenizer.bos_id >= 0 else []
    for piece in pieces:
        if piece.special:
            token = tokenizer.special_token_id(piece.text)
            if token is None:
                raise ValueError(f"the model has no {piece.text!r} token")
            tokens.append(token)
            continue
        piece_tokens = tokenizer.tokenize(piece.text)
        if piece.is_prefix and not healed and _WORD_END.search(piece.text) and piece_tokens:
            last = tokenizer.token_piece(piece_tokens[-1])
            if _HEALABLE.fullmatch(last):
                piece_tokens.pop()
                healed = last
        tokens.extend(piece_tokens)
    if len(tokens) > room:  # extra context pushed it over: keep the end, which matters most
        tokens = tokens[len(tokens) - room :]
    stops = {tokenizer.special_token_id(m) for m in template.markers()}
    return Prompt(
        tokens=tokens,
        prefix_text=prefix_text,
        suffix_text=suffix_text,
        stop_token_ids=frozenset(t for t in stops if t is not None),
        order=order,
        healed=healed,
    )


def _line_starts(text: str) -> list[int]:
    starts = [0]
    position = text.find("\n")
    while position >= 0:
        starts.append(position + 1)
        position = text.find("\n", position + 1)
    return starts


def _prefix_window(prefix: str, budget: int, tokenizer: Tokenizer) -> str:
    """The end of `prefix` that fits `budget`, starting on a grid line."""
    if len(prefix) <= budget:  # at most one char per token: it certainly fits
        return prefix
    starts = _line_starts(prefix)
    cursor_line = len(starts) - 1
    wanted_chars = int(budget * CHARS_PER_TOKEN)
    line = cursor_line
    while line > 0 and len(prefix) - starts[line] < wanted_chars:
        line -= 1
    line -= line % GRID_LINES
    while line <= cursor_line:
        window = prefix[starts[line] :]
        if _may_fit(window, budget) and len(tokenizer.tokenize(window)) <= budget:
            return window
        line += GRID_LINES
        line -= line % GRID_LINES
    # The cursor line alone is too long (minified code): cut inside it, on a grid.
    line_start = starts[cursor_line]
    keep = int(budget * 2)
    start = max(line_start, len(prefix) - keep)
    start += (GRID_CHARS - (start - line_start) % GRID_CHARS) % GRID_CHARS
    window = prefix[min(start, len(prefix)) :]
    while window and len(tokenizer.tokenize(window)) > budget:
        window = window[GRID_CHARS:] if len(window) > GRID_CHARS else window[len(window) // 2 :]
    return window


def _may_fit(window: str, budget: int) -> bool:
    return len(window) <= budget * MAX_CHARS_PER_TOKEN


def _suffix_window(suffix: str, budget: int, tokenizer: Tokenizer) -> str:
    """The start of `suffix` that fits `budget`, ending on a grid line."""
    if budget <= 0:
        return ""
    if len(suffix) <= budget:
        return suffix
    starts = _line_starts(suffix)
    wanted_chars = int(budget * CHARS_PER_TOKEN)
    line = 1
    while line < len(starts) and starts[line] < wanted_chars:
        line += 1
    line += (GRID_LINES - line % GRID_LINES) % GRID_LINES
    while line > 1:
        end = starts[line] if line < len(starts) else len(suffix)
        window = suffix[:end]
        if _may_fit(window, budget) and len(tokenizer.tokenize(window)) <= budget:
            return window
        line -= GRID_LINES
    first_line_end = starts[1] if len(starts) > 1 else len(suffix)
    window = suffix[: min(first_line_end, budget * 2)]
    while window and len(tokenizer.tokenize(window)) > budget:
        window = window[: len(window) // 2]
    return window
