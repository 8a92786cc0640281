"""Judging a sampled middle against the hole it fills, with the server's own rules.

Good: it matches the true middle (up to whitespace), or the tests pass with it.
Bad: it is empty, it adds syntax errors the true middle does not have, it
repeats the code that follows the hole, or it runs past where the server
would stop (the end of the line or of the block: `lsp_server.context`).
Anything else is unknown and makes no pair.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsp_server import syntax
from lsp_server.context import CompletionContext, build_context, stop_cut
from lsp_server.languages import language_for_id


@dataclass(frozen=True)
class Verdict:
    text: str
    matches: bool
    empty: bool
    breaks_parse: bool
    repeats_suffix: bool
    runs_past: bool
    tests_pass: bool | None = None
    """None: no tests were run."""

    @property
    def good(self) -> bool:
        return not self.bad and (self.matches or self.tests_pass is True)

    @property
    def bad(self) -> bool:
        return (
            self.empty
            or self.breaks_parse
            or self.repeats_suffix
            or self.runs_past
            or self.tests_pass is False
        )

    @property
    def reasons(self) -> list[str]:
        flags = {
            "empty": self.empty,
            "breaks_parse": self.breaks_parse,
            "repeats_suffix": self.repeats_suffix,
            "runs_past": self.runs_past,
            "tests_fail": self.tests_pass is False,
        }
        return [name for name, on in flags.items() if on]


def _normalized(text: str) -> str:
    return " ".join(text.split())


def _errors(language: str, text: str) -> int | None:
    spec = language_for_id(language)
    if spec is None:
        return None
    try:
        return syntax.error_count_in(spec, text.encode("utf-8", "surrogatepass"))
    except syntax.GrammarError:
        return None


def _first_code_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def repeats_suffix(sample: str, middle: str, suffix: str) -> bool:
    """The sample writes the line that already follows the hole (and the truth does not)."""
    following = _first_code_line(suffix)
    if len(following) < 4:
        return False
    sample_lines = {line.strip() for line in sample.splitlines()}
    middle_lines = {line.strip() for line in middle.splitlines()}
    return following in sample_lines and following not in middle_lines


def _context(prefix: str, suffix: str, language: str) -> CompletionContext:
    spec = language_for_id(language)
    text = prefix + suffix
    tree = None
    if spec is not None:
        try:
            tree = syntax.parse(spec, text.encode("utf-8", "surrogatepass"))
        except syntax.GrammarError:
            tree = None
    return build_context(text, len(prefix), spec, tree)


def runs_past(sample: str, middle: str, prefix: str, suffix: str, language: str) -> bool:
    """The server would cut the sample before its end, and would not cut the truth."""
    context = _context(prefix, suffix, language)

    def cut_off(candidate: str) -> bool:
        cut = stop_cut(context, candidate + "\n")
        return cut is not None and bool(candidate[cut:].strip())

    return cut_off(sample) and not cut_off(middle)


def as_served(sample: str, prefix: str, suffix: str, language: str) -> str:
    """The sample cut where the server's stop rules would end it (the end of the line or of the
    block): what a user would have been shown."""
    cut = stop_cut(_context(prefix, suffix, language), sample + "\n")
    return (sample if cut is None else sample[:cut]).rstrip()


def judge(sample: str, prefix: str, middle: str, suffix: str, language: str) -> Verdict:
    empty = not sample.strip()
    truth_errors = _errors(language, prefix + middle + suffix)
    sample_errors = _errors(language, prefix + sample + suffix)
    breaks = truth_errors is not None and sample_errors is not None and sample_errors > truth_errors
    return Verdict(
        text=sample,
        matches=not empty and _normalized(sample) == _normalized(middle),
        empty=empty,
        breaks_parse=breaks,
        repeats_suffix=not empty and repeats_suffix(sample, middle, suffix),
        runs_past=not empty and runs_past(sample, middle, prefix, suffix, language),
    )
