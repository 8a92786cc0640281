"""Holes cut in code where an editor would ask for a completion: one vocabulary for all.

A hole removes `text[start:end]` and leaves the cursor at `start`. The
cutters live beside this file: `parsed` (a file parsed once, with character
offsets), `tokens` (holes on token boundaries and clean lines), `nodes` (holes
on syntax nodes, and random spans) and `crossfile` (first uses of another
file's names). What to cut, and how many of each kind, is the caller's
policy: the evaluation's per-kind groups (`lsp_server.evaluation.tasks`) and
training's mix (`training.data.holes`). Both name kinds with `HoleKind`, so a
kind in a task id, a training row and a recipe is one and the same.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class HoleKind(enum.StrEnum):
    """Every kind of hole, by the name stored in task ids, training rows and recipes."""

    LINE = "line"
    """A line's code to the line end. Evaluation: one clean line, the cursor after its
    indentation (`tokens.line_holes`); training: one to three whole statements from the first
    one's line start (`nodes.find_spans`)."""
    MIDLINE = "midline"
    """The rest of a clean line from a token boundary, either side of the blank before a token."""
    LINE_REST = "line_rest"
    """The rest of a single-line statement from the start of one of its syntax nodes."""
    BLOCK = "block"
    """The statements of a body, as the server's block mode writes them. Evaluation: function,
    loop and branch bodies up to 12 lines (`tokens.block_holes`); training: any body of the
    grammar up to 30 lines (`nodes.find_spans`)."""
    SPAN = "span"
    """A run of whole tokens, up to three lines, from any token start."""
    RANDOM = "random"
    """Any run of characters (the SantaCoder recipe): robustness to every other shape."""
    EXPRESSION = "expression"
    """One single-line expression node: a call, a subscript, an operation."""
    COMMENT_CODE = "comment_code"
    """A function body after its docstring or a leading comment."""
    CROSSFILE = "crossfile"
    """A line, or its rest from the name, with the line's first use of a name that only another
    file of the repository defines (`crossfile.crossfile_holes`)."""


@dataclass(frozen=True)
class Hole:
    start: int
    end: int
    kind: HoleKind
    detail: str = ""
    """What a report groups by within a kind: `after-blank`, `loop`, `midline/call`..."""

    def __post_init__(self) -> None:
        # A kind given by its name (a recipe key, a stored row) becomes the HoleKind; a name
        # outside the vocabulary is a ValueError here rather than a stray label later.
        object.__setattr__(self, "kind", HoleKind(self.kind))
