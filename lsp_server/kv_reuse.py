"""Plan how much of the cached prompt a new prompt can reuse (pure).

Beyond the common prefix, long runs of the new prompt often sit further on in
the cache: the prompt window moved down a few lines, or an item of project
context in front of the code was dropped (tokens removed). llama.cpp can move
cached tokens to new positions, so those runs are shifted into place instead
of being evaluated again. llama.cpp only accepts a batch that continues right
after the highest cached position, so the runs must follow the prefix without
a gap; everything after the first gap is evaluated.

A shifted run keeps the attention values it was computed with, so it is an
approximation when what precedes it changed (llama-server's --cache-reuse and
llama.vim make the same trade); `inkling eval` measures its effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GRAM = 8
"""Length of the token n-grams used to find candidate runs."""


@dataclass(frozen=True)
class Move:
    """Cached tokens [src, src+length) go to positions [dst, dst+length)."""

    src: int
    dst: int
    length: int


@dataclass(frozen=True)
class ReusePlan:
    keep: int
    """Common prefix kept in place."""
    moves: tuple[Move, ...]
    """Runs moved into place, in increasing order of source and destination."""
    evaluate: tuple[tuple[int, int], ...]
    """Ranges [start, end) of the prompt to evaluate (one: the tail after the reused part)."""

    @property
    def reused(self) -> int:
        return self.keep + sum(move.length for move in self.moves)


def plan_reuse(cached: Sequence[int], prompt: Sequence[int], min_run: int) -> ReusePlan:
    """Reuse the common prefix, then runs of at least `min_run` tokens found in order."""
    keep = 0
    for old, new in zip(cached, prompt, strict=False):
        if old != new:
            break
        keep += 1
    last = len(prompt) - 1  # the last token is always evaluated: its logits are needed
    keep = min(keep, last)
    if min_run <= 0 or keep >= last or len(cached) - keep < min_run:
        return ReusePlan(keep, (), ((keep, len(prompt)),))
    gram = min(GRAM, min_run)
    starts: dict[tuple[int, ...], list[int]] = {}
    for position in range(keep, len(cached) - gram + 1):
        starts.setdefault(tuple(cached[position : position + gram]), []).append(position)
    moves: list[Move] = []
    evaluate: list[tuple[int, int]] = []
    gap_start = position = keep
    cache_floor = keep
    while position <= last - min_run and gap_start == position:
        best_src, best_len = -1, 0
        for src in starts.get(tuple(prompt[position : position + gram]), ()):
            if src < cache_floor:
                continue
            length = 0
            limit = min(len(cached) - src, last - position)
            while length < limit and cached[src + length] == prompt[position + length]:
                length += 1
            if length > best_len:
                best_src, best_len = src, length
        if best_len < min_run:
            break  # a gap: evaluate from here on
        moves.append(Move(best_src, position, best_len))
        position += best_len
        cache_floor = best_src + best_len
        gap_start = position
    evaluate.append((gap_start, len(prompt)))
    return ReusePlan(keep, tuple(moves), tuple(evaluate))


def removals(plan: ReusePlan) -> list[tuple[int, int]]:
    """Cached position ranges [p0, p1) to drop (p1 = -1: to the end) before moving."""
    dropped: list[tuple[int, int]] = []
    position = plan.keep
    for move in plan.moves:
        if move.src > position:
            dropped.append((position, move.src))
        position = move.src + move.length
    dropped.append((position, -1))
    return dropped


def shift_order(plan: ReusePlan) -> list[Move]:
    """Moves ordered so that no run lands on cells another run still occupies:
    leftward moves first, in increasing order; then rightward ones, decreasing."""
    left = [m for m in plan.moves if m.dst < m.src]
    right = [m for m in plan.moves if m.dst > m.src]
    return left + list(reversed(right))
