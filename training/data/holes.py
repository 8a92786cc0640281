"""Training's hole policy: the kinds a recipe may mix, and one hole of a kind from a file.

The holes are cut by `lsp_server.holes` (shared with the evaluation, one
vocabulary of kinds); the shares of each kind are the recipe's
(`ExampleConfig.holes`), drawn in `examples.py`.
"""

from __future__ import annotations

import random

from lsp_server.holes import Hole, HoleKind
from lsp_server.holes.nodes import Spans, random_span

TRAINING_KINDS = (
    HoleKind.RANDOM,
    HoleKind.LINE,
    HoleKind.LINE_REST,
    HoleKind.EXPRESSION,
    HoleKind.BLOCK,
    HoleKind.CROSSFILE,
)
"""The FIM hole kinds a recipe mixes (`examples.holes`); comment_code is an example kind of its own."""


def pick(spans: Spans, kind: HoleKind, text: str, rng: random.Random, max_random_chars: int) -> Hole | None:
    """One hole of `kind`, or None when the file has none of that shape."""
    if kind == HoleKind.RANDOM:
        return random_span(text, rng, max_random_chars) if len(text) > 1 else None
    if kind == HoleKind.LINE_REST:
        if not spans.line_cuts:
            return None
        cut, end = rng.choice(spans.line_cuts)
        return Hole(cut, end, HoleKind.LINE_REST)
    if kind == HoleKind.COMMENT_CODE:
        return rng.choice(spans.documented) if spans.documented else None
    candidates = spans.by_kind.get(kind)
    return rng.choice(candidates) if candidates else None
