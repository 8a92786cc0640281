"""Similar code: windows of a file ranked by the identifiers they share with the cursor's lines.

A small model copies far better than it recalls: the lines a sibling file
uses to call the same helper (the Unix twin of a Windows file, another
operator written on the same pattern) are often the answer itself. Sparse
Jaccard over identifier sets, as RepoCoder and the neighbouring-tab snippets
of the big tools do: no embedding model, a few milliseconds per request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

WINDOW_LINES = 12
"""Lines per window, and lines above the cursor the windows are compared with."""
STRIDE_LINES = WINDOW_LINES // 2

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMON_WORDS = (
    "and as async await break case catch class const continue def default defer del elif else "
    "err export extends false False for from func function go if import in interface is let "
    "new nil none None not null or package pass private public raise range return self static "
    "string struct switch this throw true True try type typeof undefined var void while with "
    "yield int bool"
)
_COMMON = frozenset(_COMMON_WORDS.split(" "))
"""Keywords and words every file of a language has: sharing them says nothing."""


@dataclass(frozen=True)
class Window:
    start_line: int
    text: str
    words: frozenset[str]

    @property
    def end_line(self) -> int:
        return self.start_line + self.text.count("\n") + 1


def identifiers(text: str) -> frozenset[str]:
    return frozenset(_IDENTIFIER.findall(text)) - _COMMON


def windows(text: str) -> list[Window]:
    """Overlapping windows of a file; blank and identifier-free ones are left out."""
    lines = text.split("\n")
    found = []
    for start in range(0, max(1, len(lines) - STRIDE_LINES), STRIDE_LINES):
        chunk = "\n".join(lines[start : start + WINDOW_LINES]).strip("\n")
        words = identifiers(chunk)
        if len(words) >= 3:
            found.append(Window(start, chunk, words))
    return found


def query(text_above_cursor: str) -> frozenset[str]:
    """What the windows are compared with: the identifiers of the last lines above the cursor."""
    return identifiers("\n".join(text_above_cursor.split("\n")[-WINDOW_LINES - 1 :]))


def jaccard(words: frozenset[str], other: frozenset[str]) -> float:
    """Shared identifiers over all of them: how alike two pieces of code are (0 to 1)."""
    union = len(words | other)
    return len(words & other) / union if union else 0.0


def similarity(window: Window, wanted: frozenset[str]) -> float:
    return jaccard(window.words, wanted)


def most_similar(
    candidates: Iterable[tuple[str, Window]], wanted: frozenset[str], count: int, least: float
) -> list[tuple[float, str, Window]]:
    """The `count` best windows at or above `least`, never two overlapping ones of one file."""
    scored = sorted(
        ((similarity(window, wanted), key, window) for key, window in candidates),
        key=lambda item: (-item[0], item[1], item[2].start_line),
    )
    chosen: list[tuple[float, str, Window]] = []
    for score, key, window in scored:
        if score < least or len(chosen) == count:
            break
        if any(
            key == other_key and window.start_line < other.end_line and other.start_line < window.end_line
            for _, other_key, other in chosen
        ):
            continue
        chosen.append((score, key, window))
    return chosen
