"""Code blocks inside Markdown and reStructuredText documents.

Docs show how a team means its APIs to be called; their fenced blocks are
training code like any other file. Markdown goes through markdown-it (the
CommonMark parser that rich already brings); reST has no maintained pure
parser worth a dependency, and its `.. code-block:: lang` directive is
line-structured, so a small reader suffices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath

DOC_EXTENSIONS = frozenset({".md", ".markdown", ".rst"})

_RST_DIRECTIVE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*(\S*)\s*$")
_MIN_LINES = 2


@dataclass(frozen=True)
class CodeBlock:
    language: str
    code: str


def code_blocks(text: str, path: str) -> Iterator[CodeBlock]:
    if PurePath(path).suffix.lower() == ".rst":
        yield from _rst_blocks(text)
    else:
        yield from _markdown_blocks(text)


def _markdown_blocks(text: str) -> Iterator[CodeBlock]:
    from markdown_it import MarkdownIt

    for token in MarkdownIt("commonmark").parse(text):
        if token.type == "fence" and token.content.count("\n") >= _MIN_LINES:
            yield CodeBlock(token.info.split()[0].lower() if token.info.strip() else "", token.content)


def _rst_blocks(text: str) -> Iterator[CodeBlock]:
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _RST_DIRECTIVE.match(lines[index])
        index += 1
        if not match:
            continue
        base = len(match.group(1))
        while index < len(lines) and (not lines[index].strip() or lines[index].lstrip().startswith(":")):
            index += 1  # blank lines and directive options (:linenos:)
        body: list[str] = []
        indent: int | None = None
        while index < len(lines):
            line = lines[index]
            if line.strip():
                width = len(line) - len(line.lstrip())
                if width <= base:
                    break
                indent = width if indent is None else min(indent, width)
            body.append(line)
            index += 1
        while body and not body[-1].strip():
            body.pop()
        if indent is not None and len(body) >= _MIN_LINES:
            code = "\n".join(line[indent:] for line in body) + "\n"
            yield CodeBlock(match.group(2).lower(), code)
