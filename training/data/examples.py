"""Files -> training examples: FIM holes, comment-to-code, plain next-token.

An example is text, not tokens: prefix, suffix, middle and the order to
render them in. `training.tokens` renders it with the server's own template
(`lsp_server.templates`) and the base model's tokenizer, so one prepared
dataset serves any base.

Two details follow the server: a prefix never ends in spaces or tabs (the
server cuts them and lets the model write them, see `lsp_server.prompt`), so
they move into the middle; and the windows start and end on whole lines.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from lsp_server.holes import Hole, HoleKind
from lsp_server.holes.nodes import Spans, find_spans
from lsp_server.templates import ContextFile
from training.config import ConfigError
from training.data.holes import TRAINING_KINDS, pick

EXAMPLE_KINDS = ("fim", "comment_code", "next_token")
HOLE_SHAPES = tuple(kind.value for kind in TRAINING_KINDS)


@dataclass
class ExampleConfig:
    mix: dict[str, float] = field(
        default_factory=lambda: {"fim": 0.55, "comment_code": 0.3, "next_token": 0.15}
    )
    """Weight of each example kind. comment_code falls back to fim in files without documented
    functions, so its weight is set above the share wanted (about a fifth on the standard library)."""
    holes: dict[str, float] = field(
        default_factory=lambda: {
            "random": 0.15,
            "line": 0.3,
            "line_rest": 0.25,
            "expression": 0.1,
            "block": 0.2,
            "crossfile": 0.0,
        }
    )
    """Share of each FIM hole shape (syntax-aligned except 'random'). 'crossfile': a line's
    first use of a name that only another file of the source defines (the holes of `inkling
    eval --track crossfile`), always with project context. In a file without one the draw is
    retried like any shape the file lacks, so such files may give fewer examples."""
    spm_share: float = 0.5
    """Share of FIM examples in suffix-prefix-middle order (the rest: prefix-suffix-middle)."""
    context_share: float = 0.0
    """Share of FIM and comment-to-code examples given the project context the server would
    put in front of them (signatures from other files of the same source, `data.context`)."""
    context_tokens: int = 384
    """Token budget of that context (the server's `contextTokens`)."""
    chars_per_example: int = 1500
    """One example per this many characters of a file..."""
    max_examples_per_file: int = 8
    """...and at most this many."""
    prefix_chars: int = 2400
    suffix_chars: int = 900
    max_middle_chars: int = 1200
    max_random_chars: int = 200
    next_token_lines: tuple[int, int] = (2, 12)
    """next_token: the completion is this many lines (inclusive range)."""
    seed: int = 1234

    def __post_init__(self) -> None:
        for name, table, known in (
            ("mix", self.mix, EXAMPLE_KINDS),
            ("holes", self.holes, HOLE_SHAPES),
        ):
            unknown = set(table) - set(known)
            if unknown:
                raise ConfigError(f"examples.{name}: unknown kinds {sorted(unknown)}; known: {list(known)}")
            if not table or sum(table.values()) <= 0 or min(table.values()) < 0:
                raise ConfigError(f"examples.{name}: shares must be >= 0 and not all zero")


@dataclass(frozen=True)
class Example:
    path: str
    language: str
    kind: str
    """fim | comment_code | next_token."""
    hole: str
    """Hole shape: one of HOLE_SHAPES, comment_code, or '' for next_token."""
    order: str
    """psm | spm | prefix."""
    prefix: str
    suffix: str
    middle: str
    ends_file: bool = False
    """next_token: the completion reaches the end of the file (the model should stop there)."""
    context_path: str = ""
    """With project context: the file's path in its workspace (the prompt names it)."""
    context: tuple[ContextFile, ...] = ()
    """Project context: other files' signatures, in front of the prompt."""

    def as_row(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "language": self.language,
            "kind": self.kind,
            "hole": self.hole,
            "order": self.order,
            "prefix": self.prefix,
            "suffix": self.suffix,
            "middle": self.middle,
            "ends_file": self.ends_file,
            "context_path": self.context_path,
            "context": json.dumps([{"path": f.path, "text": f.text} for f in self.context]),
        }


def _weighted(rng: random.Random, table: dict[str, float]) -> str:
    names = [name for name, weight in table.items() if weight > 0]
    return rng.choices(names, weights=[table[n] for n in names])[0]


def _file_rng(seed: int, path: str) -> random.Random:
    # Per-file generator: a file's examples do not change when other files do.
    return random.Random(f"{seed}:{path}")


class ContextSource(Protocol):
    """Project context for holes of one split (`data.context.RepositoryContext`)."""

    def __call__(
        self, path: str, language: str, text: str, start: int, end: int, /
    ) -> tuple[str, list[ContextFile]]:
        """(path in the workspace, context) for the hole text[start:end]."""
        ...

    def crossfile_holes(
        self, path: str, language: str, text: str, rng: random.Random, /
    ) -> list[tuple[int, int]]:
        """(start, end) of the holes whose answer uses another file's name."""
        ...


def examples_for_file(
    path: str, text: str, language: str, config: ExampleConfig, context: ContextSource | None = None
) -> Iterator[Example]:
    rng = _file_rng(config.seed, path)
    count = max(1, min(config.max_examples_per_file, len(text) // config.chars_per_example))
    spans: Spans | None = None
    crossfile: list[tuple[int, int]] | None = None
    seen: set[tuple[int, int, str]] = set()
    for _ in range(count * 3):  # a few retries for shapes a file lacks
        if count <= 0:
            return
        kind = _weighted(rng, config.mix)
        if kind == "next_token":
            example = _next_token(path, text, language, rng, config)
            if example is not None:
                count -= 1
                yield example
            continue
        if spans is None:
            spans = find_spans(text, language, max_middle_chars=config.max_middle_chars)
        hole: Hole | None = None
        if kind == "comment_code":
            hole = pick(spans, HoleKind.COMMENT_CODE, text, rng, config.max_random_chars)
        if hole is None:
            kind = "fim"
            shape = HoleKind(_weighted(rng, config.holes))
            if shape == HoleKind.CROSSFILE:
                if crossfile is None:
                    crossfile = [] if context is None else context.crossfile_holes(path, language, text, rng)
                hole = Hole(*rng.choice(crossfile), HoleKind.CROSSFILE) if crossfile else None
            else:
                hole = pick(spans, shape, text, rng, config.max_random_chars)
        if hole is None or (hole.start, hole.end, hole.kind) in seen:
            continue
        seen.add((hole.start, hole.end, hole.kind))
        order = "spm" if rng.random() < config.spm_share else "psm"
        example = fim_example(path, text, language, hole, order, config, kind=kind)
        if (
            example is not None
            and context is not None
            and (hole.kind == HoleKind.CROSSFILE or rng.random() < config.context_share)
        ):
            where, found = context(path, language, text, hole.start, hole.end)
            if found:
                example = dataclasses.replace(example, context_path=where, context=tuple(found))
        if example is not None:
            count -= 1
            yield example


def fim_example(
    path: str, text: str, language: str, hole: Hole, order: str, config: ExampleConfig, kind: str = "fim"
) -> Example | None:
    prefix, middle, suffix = text[: hole.start], text[hole.start : hole.end], text[hole.end :]
    kept = prefix.rstrip(" \t")
    middle = prefix[len(kept) :] + middle
    prefix = kept
    if not middle.strip() or len(middle) > config.max_middle_chars:
        return None
    return Example(
        path=path,
        language=language,
        kind=kind,
        hole=hole.kind.value,
        order=order,
        prefix=_tail_lines(prefix, config.prefix_chars),
        suffix=_head_lines(suffix, config.suffix_chars),
        middle=middle,
    )


def _next_token(
    path: str, text: str, language: str, rng: random.Random, config: ExampleConfig
) -> Example | None:
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        return None
    low, high = config.next_token_lines
    start = rng.randrange(1, len(lines))
    wanted = rng.randint(low, max(low, high))
    middle_lines = lines[start : start + wanted]
    middle = "".join(middle_lines)
    while len(middle) > config.max_middle_chars and len(middle_lines) > 1:
        middle_lines.pop()
        middle = "".join(middle_lines)
    if not middle.strip() or len(middle) > config.max_middle_chars:
        return None
    prefix = "".join(lines[:start])
    return Example(
        path=path,
        language=language,
        kind="next_token",
        hole="",
        order="prefix",
        prefix=_tail_lines(prefix, config.prefix_chars),
        suffix="",
        middle=middle,
        ends_file=start + len(middle_lines) >= len(lines),
    )


def _tail_lines(text: str, budget: int) -> str:
    """The end of `text`, at most `budget` chars, starting at a line start when it is cut."""
    if len(text) <= budget:
        return text
    cut = len(text) - budget
    newline = text.find("\n", cut)
    return text[newline + 1 :] if 0 <= newline < len(text) - 1 else text[cut:]


def _head_lines(text: str, budget: int) -> str:
    """The start of `text`, at most `budget` chars, ending at a line end when it is cut."""
    if len(text) <= budget:
        return text
    newline = text.rfind("\n", 0, budget)
    return text[: newline + 1] if newline > 0 else text[:budget]
