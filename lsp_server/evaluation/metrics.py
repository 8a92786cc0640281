"""How a completion is scored against the text that was removed (pure).

* exact match     - `normalize(completion) == normalize(expected)`, where
                    normalize strips trailing whitespace from every line and
                    drops trailing empty lines. Leading whitespace counts.
* edit similarity - rapidfuzz's `fuzz.ratio` / 100 of the normalized strings:
                    the Indel (insert/delete) similarity `1 - distance / (len(a) + len(b))`,
                    the fuzzy ratio CrossCodeEval and RepoBench report as ES.
* parses          - inserting the completion adds no tree-sitter ERROR or
                    MISSING node: `errors(prefix + completion + suffix) <=
                    errors(prefix + suffix)`.
* clean           - stricter: the completed file has no ERROR or MISSING node
                    at all, as the original had none (tasks come only from files
                    that parse cleanly). Counting alone lets a completion trade
                    the hole's error for one of its own (`var x = ` + `(1`).
* repeats suffix  - the completion writes again what follows the hole: its
                    last non-blank line (stripped) ends with the rest of the
                    cursor line (stripped, when that is not blank); or, when the
                    rest of the line is blank, one of its lines as it will stand
                    in the file (indentation included; the first continues the
                    cursor line's text) equals the first non-blank line below,
                    trailing whitespace aside. So a completion that runs on past
                    the end of the hole (`}` then the next function) counts,
                    while a nested block's own `}` (deeper indented) does not.
* empty           - nothing to insert (the server skipped, or post-processing
                    rejected everything): a miss for exact match, similarity 0,
                    and neither parses nor repeats is counted for it: those two
                    shares are over non-empty completions.
* passes (pass@1) - the exec track only (`exec_track.py`): the tests that
                    exercise the hole pass with the completion inserted at the
                    cursor (one answer per task, so the pass rate is pass@1).
                    An exact match passes unrun, an empty answer fails unrun.
                    None on the other tracks, whose summaries then show none.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rapidfuzz import fuzz

from lsp_server import syntax
from lsp_server.languages import LanguageSpec


def normalize(text: str) -> str:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def exact_match(completion: str, expected: str) -> bool:
    got = normalize(completion)
    return bool(got) and got == normalize(expected)


def edit_similarity(completion: str, expected: str) -> float:
    got = normalize(completion)
    if not got:
        return 0.0
    return float(fuzz.ratio(got, normalize(expected))) / 100.0


def _errors(spec: LanguageSpec, text: str) -> int:
    return syntax.error_count_in(spec, text.encode("utf-8", "surrogatepass"))


def adds_no_errors(spec: LanguageSpec, prefix: str, completion: str, suffix: str) -> bool:
    return _errors(spec, prefix + completion + suffix) <= _errors(spec, prefix + suffix)


def parses_cleanly(spec: LanguageSpec, prefix: str, completion: str, suffix: str) -> bool:
    return _errors(spec, prefix + completion + suffix) == 0


def repeats_suffix(completion: str, suffix: str, line_prefix: str = "") -> bool:
    """True when the completion writes again what is already right after the hole.

    `line_prefix` is the cursor line's text before the cursor."""
    if not completion.strip():
        return False
    lines = [line.rstrip() for line in (line_prefix + completion).split("\n") if line.strip()]
    rest_of_line, _, below = suffix.partition("\n")
    right = rest_of_line.strip()
    if right:
        return lines[-1].strip().endswith(right)
    following = next((line.rstrip() for line in below.split("\n") if line.strip()), "")
    return bool(following) and following in lines


@dataclass(frozen=True)
class Score:
    exact: bool
    similarity: float
    empty: bool
    parses: bool | None
    """None for an empty completion."""
    clean: bool | None
    repeats: bool | None
    latency_ms: float
    error: str | None = None
    passed: bool | None = None
    """Exec track: the tests passed with the completion in place; None: not judged by running."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(
    spec: LanguageSpec | None,
    prefix: str,
    suffix: str,
    expected: str,
    completion: str,
    latency_ms: float,
    error: str | None = None,
) -> Score:
    empty = not completion.strip()
    if empty:
        return Score(False, 0.0, True, None, None, None, latency_ms, error)
    return Score(
        exact=exact_match(completion, expected),
        similarity=edit_similarity(completion, expected),
        empty=False,
        parses=adds_no_errors(spec, prefix, completion, suffix) if spec is not None else None,
        clean=parses_cleanly(spec, prefix, completion, suffix) if spec is not None else None,
        repeats=repeats_suffix(completion, suffix, prefix[prefix.rfind("\n") + 1 :]),
        latency_ms=latency_ms,
        error=error,
    )


@dataclass(frozen=True)
class Summary:
    n: int
    exact_match: float
    edit_similarity: float
    empty_share: float
    parse_share: float | None
    """Among non-empty completions; None when there are none."""
    clean_share: float | None
    repeat_share: float | None
    latency_p50_ms: float
    latency_p90_ms: float
    errors: int
    pass_at_1: float | None = None
    """The share of tasks whose tests passed (exec track); None when none were judged so."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(scores: Sequence[Score]) -> Summary:
    n = len(scores)
    answered = [s for s in scores if not s.empty]
    parsed = [s.parses for s in answered if s.parses is not None]
    clean = [s.clean for s in answered if s.clean is not None]
    repeated = [s.repeats for s in answered if s.repeats is not None]
    latencies = [s.latency_ms for s in scores]
    judged = [s.passed for s in scores if s.passed is not None]
    return Summary(
        n=n,
        exact_match=statistics.fmean(s.exact for s in scores) if n else 0.0,
        edit_similarity=statistics.fmean(s.similarity for s in scores) if n else 0.0,
        empty_share=(n - len(answered)) / n if n else 0.0,
        parse_share=statistics.fmean(parsed) if parsed else None,
        clean_share=statistics.fmean(clean) if clean else None,
        repeat_share=statistics.fmean(repeated) if repeated else None,
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p90_ms=percentile(latencies, 0.9),
        errors=sum(1 for s in scores if s.error),
        pass_at_1=statistics.fmean(judged) if judged else None,
    )
