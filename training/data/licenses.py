"""Which code may be trained on by its license: permissive, restricted, or unknown.

The rule (training/README.md, "Sources"): permissive licenses only: MIT (and
its variants), BSD (0/2/3-clause), Apache, PSF, ISC, Unlicense, zlib, Boost,
CC0 and public domain, HPND, UPL, NCSA, AFL. Copyleft licenses are
restricted: GPL, LGPL, AGPL, and the file-level copyleft ones too (MPL, EPL,
CDDL, EUPL), since a model may reproduce what it learnt without the notice
they require; so are non-commercial, share-alike and proprietary terms.
Anything not recognised is unknown, and unknown code is left out like
restricted code: a license is only trusted when it is read, never assumed.

Python distributions state theirs in metadata (`classify`): a PEP 639
`License-Expression` decides alone; otherwise the `License` field and the
`License ::` classifiers are read together and any restricted one wins, so that
contradictory metadata keeps a distribution out. Files state theirs in a
header (`file_verdict`): an SPDX-License-Identifier line or a copyleft
license's standard notice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageMetadata
from typing import Literal

Verdict = Literal["permissive", "restricted", "unknown"]

_Table = tuple[tuple[re.Pattern[str], str, Verdict], ...]


def _compiled(*rows: tuple[str, str, Verdict]) -> _Table:
    return tuple((re.compile(pattern, re.IGNORECASE), family, verdict) for pattern, family, verdict in rows)


# One license name (an SPDX id, a short `License` field, a classifier's last part) -> family.
# Restricted names come first: "GNU Lesser General Public License" must not read as anything else.
_NAMES = _compiled(
    (r"\bagpl|affero", "AGPL", "restricted"),
    (r"\blgpl|lesser general public|library general public", "LGPL", "restricted"),
    (r"\bgpl|general public licen[cs]e", "GPL", "restricted"),
    (r"\bmpl\b|\bmpl-|mozilla public", "MPL", "restricted"),
    (r"\bepl\b|\bepl-|eclipse public", "EPL", "restricted"),
    (r"\bcddl|common development and distribution", "CDDL", "restricted"),
    (r"\beupl|european union public", "EUPL", "restricted"),
    (r"\bsspl|server side public", "SSPL", "restricted"),
    (r"\bosl-|open software licen", "OSL", "restricted"),
    (r"cc-by-(?:nc|sa|nd)|non-?commercial|share-?alike|no-?derivs", "non-free CC", "restricted"),
    (r"proprietary|commercial|freeware", "proprietary", "restricted"),
    (r"unicode-(?:dfs|3)", "Unicode", "permissive"),
    (r"\bapache\b", "Apache", "permissive"),
    (r"\bmit\b|\bexpat\b|\bx11\b", "MIT", "permissive"),
    (r"bsd", "BSD", "permissive"),
    (
        r"\bpsf\b|python software foundation|\bpython-2\.0|\bcnri\b|^python license",
        "PSF",
        "permissive",
    ),
    (r"\bisc\b|\biscl\b", "ISC", "permissive"),
    (r"\bunlicense\b", "Unlicense", "permissive"),
    (r"\bzlib\b|libpng", "Zlib", "permissive"),
    (r"\bbsl-1\.0\b|boost software", "BSL-1.0", "permissive"),
    (r"\bcc0\b|cc0-|public domain", "public domain", "permissive"),
    (r"\bhpnd\b|historical permission", "HPND", "permissive"),
    (r"\bupl\b|\bupl-|universal permissive", "UPL", "permissive"),
    (r"\bncsa\b|university of illinois", "NCSA", "permissive"),
    (r"\bafl\b|\bafl-|academic free", "AFL", "permissive"),
    (r"^curl$", "curl", "permissive"),
)

# Phrases of a license's own text, for a `License` field that holds the whole text.
_PHRASES = _compiled(
    (r"gnu affero general public license", "AGPL", "restricted"),
    (r"gnu (?:lesser|library) general public license", "LGPL", "restricted"),
    (r"gnu general public license", "GPL", "restricted"),
    (r"mozilla public license", "MPL", "restricted"),
    (r"eclipse public license", "EPL", "restricted"),
    (r"permission is hereby granted, free of charge", "MIT", "permissive"),
    (r"redistribution and use in source and binary forms", "BSD", "permissive"),
    (r"apache license,? version 2\.0", "Apache", "permissive"),
    (r"python software foundation license", "PSF", "permissive"),
    (
        r"permission to use, copy, modify, and(?:/or)? distribute this software for any purpose",
        "ISC",
        "permissive",
    ),
)

_OPERATOR = re.compile(r"(\(|\)|(?<![^\s()])(?:AND|OR|WITH)(?![^\s()]))", re.IGNORECASE)
_SHORT_FIELD = 100
"""A `License` field longer than this (or of several lines) is a license's text, not its name."""
_TEXT_OPENING = 2000
"""A license text is judged by its opening: the texts of bundled libraries often follow it."""
_HEADER_CHARS = 3000
"""How much of a source file counts as its header."""
_SPDX_LINE = re.compile(r"SPDX-License-Identifier:\s*([^\n*]+?)\s*(?:\*/|-->|$)", re.MULTILINE)
_COMMENT_MARKS = re.compile(r"[\s#*/;]+")
_GENERIC_CLASSIFIERS = frozenset({"osi approved", "dfsg approved"})
_OPERATORS = frozenset({"AND", "OR", "WITH"})


@dataclass(frozen=True)
class License:
    verdict: Verdict
    label: str
    """What was read: the expression, the field, the families found; empty when nothing was."""


def name_verdict(name: str) -> tuple[Verdict, str]:
    """One license's verdict and family, from its SPDX id or its name."""
    for pattern, family, verdict in _NAMES:
        if pattern.search(name):
            return verdict, family
    return "unknown", ""


def _all_of(verdicts: Iterable[Verdict]) -> Verdict:
    found = set(verdicts)
    if "restricted" in found:
        return "restricted"
    return "unknown" if "unknown" in found or not found else "permissive"


def _any_of(verdicts: Iterable[Verdict]) -> Verdict:
    found = set(verdicts)
    if "permissive" in found:
        return "permissive"
    return "unknown" if "unknown" in found or not found else "restricted"


class _MalformedError(ValueError):
    pass


class _Parser:
    """SPDX expressions (`MIT OR (Apache-2.0 WITH LLVM-exception AND BSD-3-Clause)`): AND needs every
    part permissive, OR any one; an exception (WITH) only adds permissions, so the license decides."""

    def __init__(self, text: str) -> None:
        parts = (part.strip() for part in _OPERATOR.split(text))
        self.tokens = [part.upper() if part.upper() in _OPERATORS else part for part in parts if part]
        self.position = 0

    def parse(self) -> Verdict:
        verdict = self._or()
        if self.position != len(self.tokens):
            raise _MalformedError(self._peek())
        return verdict

    def _next(self) -> str:
        if self.position >= len(self.tokens):
            raise _MalformedError("ends early")
        self.position += 1
        return self.tokens[self.position - 1]

    def _peek(self) -> str:
        return self.tokens[self.position] if self.position < len(self.tokens) else ""

    def _or(self) -> Verdict:
        verdicts = [self._and()]
        while self._peek() == "OR":
            self._next()
            verdicts.append(self._and())
        return _any_of(verdicts)

    def _and(self) -> Verdict:
        verdicts = [self._factor()]
        while self._peek() == "AND":
            self._next()
            verdicts.append(self._factor())
        return _all_of(verdicts)

    def _factor(self) -> Verdict:
        token = self._next()
        if token == "(":
            verdict = self._or()
            if self._next() != ")":
                raise _MalformedError("unbalanced")
        elif token == ")" or token in _OPERATORS:
            raise _MalformedError(token)
        else:
            verdict = name_verdict(token)[0]
        if self._peek() == "WITH":
            self._next()
            self._next()
        return verdict


def expression_verdict(expression: str) -> Verdict:
    """An SPDX license expression's verdict (a malformed one is unknown)."""
    try:
        return _Parser(expression).parse()
    except _MalformedError:
        return "unknown"


def _text_verdict(text: str) -> tuple[Verdict, str]:
    """A whole license text: its title line, else the phrases of its opening."""
    lines = (line.strip(" =-*#\t") for line in text.splitlines())
    title = next((line for line in lines if line), "")
    verdict, family = name_verdict(title) if len(title) <= _SHORT_FIELD else ("unknown", "")
    if verdict != "unknown":
        return verdict, family
    opening = " ".join(text[:_TEXT_OPENING].split())
    found = [(v, f) for pattern, f, v in _PHRASES if pattern.search(opening)]
    found.sort(key=lambda item: item[0] != "restricted")
    return found[0] if found else ("unknown", "")


def _field_verdict(field: str) -> tuple[Verdict, str]:
    """The `License` field: a name or an expression (free text: a malformed one is read as a name),
    or the license's whole text."""
    text = field.strip()
    if len(text) > _SHORT_FIELD or "\n" in text:
        return _text_verdict(text)
    try:
        return _Parser(text).parse(), text
    except _MalformedError:
        return name_verdict(text)[0], text


def _classifier_readings(classifiers: Iterable[str]) -> list[tuple[Verdict, str]]:
    readings = []
    for classifier in classifiers:
        parts = [part.strip() for part in classifier.split("::")]
        if parts[0] == "License" and len(parts) > 1 and parts[-1].lower() not in _GENERIC_CLASSIFIERS:
            readings.append(name_verdict(parts[-1]))
    return readings


def _first(metadata: PackageMetadata, key: str) -> str:
    values = metadata.get_all(key) or []
    return str(values[0]).strip() if values else ""


def classify(metadata: PackageMetadata) -> License:
    """A distribution's license from its metadata."""
    expression = _first(metadata, "License-Expression")
    if expression:
        return License(expression_verdict(expression), expression)
    field = _first(metadata, "License")
    if field.upper() in {"UNKNOWN", "NONE"}:
        field = ""
    readings = [_field_verdict(field)] if field else []
    readings += _classifier_readings(metadata.get_all("Classifier") or [])
    known = [(verdict, label) for verdict, label in readings if verdict != "unknown"]
    if not known:
        return License("unknown", field.splitlines()[0][:60] if field else "")
    verdict: Verdict = "restricted" if any(v == "restricted" for v, _ in known) else "permissive"
    # The field's own words where it agrees (e.g. "MIT OR Apache-2.0"), else the families read.
    labels = [label for v, label in known if v == verdict]
    return License(
        verdict, labels[0] if field and readings[0] == known[0] else "; ".join(dict.fromkeys(labels))
    )


def file_verdict(text: str) -> Verdict:
    """A source file's own license, from its header: permissive or restricted where it says,
    unknown where it does not (the file then goes by its source's license)."""
    header = text[:_HEADER_CHARS]
    spdx = _SPDX_LINE.search(header)
    if spdx:
        return expression_verdict(spdx.group(1))
    opening = _COMMENT_MARKS.sub(" ", header)  # a notice's words across comment lines
    if any(pattern.search(opening) for pattern, _, v in _PHRASES if v == "restricted"):
        return "restricted"
    return "unknown"
