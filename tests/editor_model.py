"""The editor's side of document sync, written from the LSP specification alone.

Lines end at LF, CRLF or a lone CR; a column counts UTF-8 bytes, UTF-16 code
units or code points. Tests use this model, not the server's code, to say
where an edit lands, so that both sides are checked against the spec.
"""

from __future__ import annotations

import re

UTF8 = "utf-8"
UTF16 = "utf-16"
UTF32 = "utf-32"
_BREAK = re.compile(r"\r\n|\r|\n")


def units(text: str, encoding: str) -> int:
    """Width of `text` in the position encoding; a lone surrogate is one UTF-16 unit."""
    if encoding == UTF32:
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def lines_of(text: str) -> list[tuple[int, int]]:
    """(start, end before the line break) of every line, as str indices."""
    result, start = [], 0
    for match in _BREAK.finditer(text):
        result.append((start, match.start()))
        start = match.end()
    result.append((start, len(text)))
    return result


def valid_offsets(text: str) -> list[int]:
    """Offsets an editor can address: anywhere except between the CR and LF of a CRLF."""
    return [i for i in range(len(text) + 1) if not (0 < i < len(text) and text[i - 1 : i + 1] == "\r\n")]


def position_of(text: str, offset: int, encoding: str = UTF16) -> tuple[int, int]:
    """(line, character) of a str offset."""
    for number, (start, end) in enumerate(lines_of(text)):
        if start <= offset <= end:
            return number, units(text[start:offset], encoding)
    raise AssertionError(f"offset {offset} is inside a line break")


def end_position(text: str, encoding: str = UTF16) -> tuple[int, int]:
    return position_of(text, len(text), encoding)


def clamped_offset(text: str, line: int, character: int, encoding: str) -> int:
    """What LSP says a position means: past the line's end is its end, past the last
    line is the end of the text; inside a character is that character's start."""
    lines = lines_of(text)
    if line >= len(lines):
        return len(text)
    start, end = lines[line]
    seen = 0
    for index in range(start, end):
        width = units(text[index], encoding)
        if seen + width > character:
            return index
        seen += width
    return end
