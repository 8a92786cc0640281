"""Open buffers: exact text under incremental edits, positions, syntax trees.

Positions arrive in the negotiated encoding (UTF-16 code units by default,
UTF-8 bytes or code points when agreed). Lines end at LF, CRLF or a lone CR,
as LSP defines them. Out-of-range positions are clamped, as the protocol
asks, and a position inside a surrogate pair snaps to the character's start,
so a buggy client can never make the server's text diverge from its own.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import threading
from dataclasses import dataclass, field

from lsp_server import syntax
from lsp_server.errors import DocumentError
from lsp_server.languages import LanguageSpec, language_for_id

_EOL = re.compile(r"\r\n|\r|\n")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")

UTF8 = "utf-8"
UTF16 = "utf-16"
UTF32 = "utf-32"


def _units(text: str, encoding: str) -> int:
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _index_for_units(line: str, units: int, encoding: str) -> int:
    """Index in `line` of the character that starts at `units` (clamped, snapped back).

    Works at codec speed: a minified line of megabytes must not cost a Python
    loop per character on every keystroke."""
    if units <= 0:
        return 0
    if encoding == UTF32 or line.isascii():
        return min(units, len(line))
    head = line[:units]  # every character is at least one unit wide
    if encoding == UTF8:
        data = head.encode("utf-8", "surrogatepass")[:units]
        # An incremental decoder holds back a character cut in half: snapped back.
        return len(codecs.getincrementaldecoder("utf-8")("surrogatepass").decode(data, final=False))
    # UTF-16: each character outside the BMP takes two units; visit only those.
    extra = 0
    for match in _ASTRAL.finditer(head):
        start = match.start() + extra
        if start >= units:
            break
        if start + 2 > units:
            return match.start()  # inside a surrogate pair: snap to the character's start
        extra += 1
    return min(units - extra, len(line))


@dataclass(frozen=True)
class DocumentSnapshot:
    """An immutable view of a buffer at one version: what a request works on, and what
    its answer's positions are converted with (the buffer may have moved on meanwhile)."""

    uri: str
    language_id: str
    version: int
    text: str
    language: LanguageSpec | None = field(default=None, compare=False)
    """Looked up once, when the buffer was opened."""
    line_starts: list[int] = field(default_factory=list, compare=False, repr=False)

    def offset_at(self, line: int, character: int, encoding: str = UTF16) -> int:
        return _offset_at(self.text, self.line_starts or _line_starts(self.text), line, character, encoding)

    def position_at(self, offset: int, encoding: str = UTF16) -> tuple[int, int]:
        return _position_at(self.text, self.line_starts or _line_starts(self.text), offset, encoding)


@dataclass(frozen=True)
class DocumentState:
    uri: str
    version: int
    sha256: str
    """Of the text encoded as UTF-8 (lone surrogates passed through)."""
    utf8_bytes: int
    lines: int
    out_of_sync: str | None


class Document:
    """One open buffer. Not thread-safe by itself: `DocumentStore` guards it."""

    def __init__(self, uri: str, language_id: str, version: int, text: str) -> None:
        self.uri = uri
        self.language_id = language_id
        self.language = language_for_id(language_id)
        self.version = version
        self.text = text
        self._line_starts: list[int] | None = None
        self._tree: syntax.Tree | None = None
        self._tree_stale = True
        self.out_of_sync: str | None = None
        """Why the server's text may differ from the editor's (an edit it could not apply)."""

    # -- positions ---------------------------------------------------------

    @property
    def line_starts(self) -> list[int]:
        if self._line_starts is None:
            self._line_starts = _line_starts(self.text)
        return self._line_starts

    def line_count(self) -> int:
        return len(self.line_starts)

    def offset_at(self, line: int, character: int, encoding: str = UTF16) -> int:
        """str index of an LSP position; past-the-end values are clamped."""
        return _offset_at(self.text, self.line_starts, line, character, encoding)

    def position_at(self, offset: int, encoding: str = UTF16) -> tuple[int, int]:
        return _position_at(self.text, self.line_starts, offset, encoding)

    # -- edits ---------------------------------------------------------------

    def apply_change(
        self,
        text: str,
        start: tuple[int, int] | None = None,
        end: tuple[int, int] | None = None,
        encoding: str = UTF16,
    ) -> None:
        """Apply one content change: the whole text, or a range replacement."""
        if start is None or end is None:
            self.replace_text(text)
            return
        begin = self.offset_at(*start, encoding)
        finish = self.offset_at(*end, encoding)
        if finish < begin:
            raise DocumentError(
                f"change range ends before it starts ({start[0]}:{start[1]} > {end[0]}:{end[1]})"
            )
        if self._tree is not None:
            self._edit_tree(begin, finish, text)
        self.text = self.text[:begin] + text + self.text[finish:]
        self._line_starts = None
        self._tree_stale = True

    def replace_text(self, text: str) -> None:
        self.text = text
        self._line_starts = None
        self._tree = None
        self._tree_stale = True

    def _edit_tree(self, begin: int, finish: int, new_text: str) -> None:
        tree = self._tree
        assert tree is not None
        start_byte = _utf8_len(self.text, 0, begin)
        old_end_byte = start_byte + _utf8_len(self.text, begin, finish)
        new_end_byte = start_byte + len(new_text.encode("utf-8", "surrogatepass"))
        start_point = self._point(begin)
        old_end_point = self._point(finish)
        new_end_point = _advance_point(start_point, new_text)
        syntax.edit_tree(
            tree, start_byte, old_end_byte, new_end_byte, start_point, old_end_point, new_end_point
        )

    def _point(self, offset: int) -> tuple[int, int]:
        """tree-sitter point (row, UTF-8 column) of a str index in the current text."""
        # tree-sitter rows break at '\n' only; a lone CR stays inside its row.
        row = self.text.count("\n", 0, offset)
        line_start = self.text.rfind("\n", 0, offset) + 1
        return row, _utf8_len(self.text, line_start, offset)

    # -- syntax ----------------------------------------------------------------

    def syntax_tree(self, max_bytes: int) -> syntax.Tree | None:
        """The parse tree for the current text, reparsed incrementally; None if too big
        or binary (tree-sitter's error recovery takes seconds on megabytes of noise)."""
        spec = self.language
        if spec is None:
            return None
        source = self.text.encode("utf-8", "surrogatepass")
        if len(source) > max_bytes or looks_binary(self.text):
            self._tree = None
            return None
        if self._tree is None or self._tree_stale:
            self._tree = syntax.parse(spec, source, self._tree)
            self._tree_stale = False
        return self._tree

    def snapshot(self) -> DocumentSnapshot:
        return DocumentSnapshot(
            self.uri, self.language_id, self.version, self.text, self.language, self.line_starts
        )


def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in _EOL.finditer(text))]


def _line_bounds(text: str, starts: list[int], line: int) -> tuple[int, int]:
    """Start and end (before the line break) of a line, as str indices."""
    start = starts[line]
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    while end > start and text[end - 1] in "\r\n":
        end -= 1
    return start, end


def _offset_at(text: str, starts: list[int], line: int, character: int, encoding: str) -> int:
    if line < 0 or character < 0:
        raise DocumentError(f"negative position {line}:{character}")
    if line >= len(starts):
        return len(text)
    start, end = _line_bounds(text, starts, line)
    return start + _index_for_units(text[start:end], character, encoding)


def _position_at(text: str, starts: list[int], offset: int, encoding: str) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    line = _bisect_right(starts, offset) - 1
    start, end = _line_bounds(text, starts, line)
    offset = min(offset, end)
    return line, _units(text[start:offset], encoding)


def looks_binary(text: str) -> bool:
    """A NUL character: no source file has one, every binary file has many (as Git judges)."""
    return "\x00" in text


def _utf8_len(text: str, start: int, end: int) -> int:
    chunk = text[start:end]
    return len(chunk) if chunk.isascii() else len(chunk.encode("utf-8", "surrogatepass"))


def _advance_point(point: tuple[int, int], inserted: str) -> tuple[int, int]:
    newlines = inserted.count("\n")
    if newlines == 0:
        return point[0], point[1] + len(inserted.encode("utf-8", "surrogatepass"))
    tail = inserted[inserted.rfind("\n") + 1 :]
    return point[0] + newlines, len(tail.encode("utf-8", "surrogatepass"))


def _bisect_right(values: list[int], target: int) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] <= target:
            lo = mid + 1
        else:
            hi = mid
    return lo


class DocumentStore:
    """The open buffers, keyed by URI. Safe to use from the server and worker threads."""

    def __init__(self) -> None:
        self._documents: dict[str, Document] = {}
        self._lock = threading.Lock()

    def open(self, uri: str, language_id: str, version: int, text: str) -> None:
        with self._lock:
            self._documents[uri] = Document(uri, language_id, version, text)

    def close(self, uri: str) -> None:
        with self._lock:
            self._documents.pop(uri, None)

    def change(
        self,
        uri: str,
        version: int,
        changes: list[tuple[str, tuple[int, int] | None, tuple[int, int] | None]],
        encoding: str,
    ) -> None:
        """Apply a didChange; all changes land or none do.

        The editor has applied the changes whatever happens here, so a change
        that cannot be applied leaves this copy out of step: it is marked so
        (completions for it are refused) until a whole-text change or a new
        didOpen brings it back."""
        with self._lock:
            document = self._require(uri)
            if document.out_of_sync is not None:
                full = [i for i, (_, start, end) in enumerate(changes) if start is None or end is None]
                if not full:
                    document.version = version
                    return
                changes = changes[full[-1] :]
                document.out_of_sync = None
            before = document.text
            try:
                for text, start, end in changes:
                    document.apply_change(text, start, end, encoding)
            except DocumentError as exc:
                document.replace_text(before)
                document.out_of_sync = f"an edit could not be applied ({exc})"
                document.version = version
                raise DocumentError(_out_of_sync_message(document)) from exc
            document.version = version

    def mark_out_of_sync(self, uri: str, reason: str) -> bool:
        """Record that an edit for `uri` was lost; False if `uri` is not open."""
        with self._lock:
            document = self._documents.get(uri)
            if document is None:
                return False
            document.out_of_sync = reason
            return True

    def get(self, uri: str) -> Document:
        with self._lock:
            return self._require_in_sync(uri)

    def snapshot(self, uri: str) -> DocumentSnapshot:
        with self._lock:
            return self._require_in_sync(uri).snapshot()

    def version(self, uri: str) -> int | None:
        """The buffer's current version; None if it is closed (or out of step)."""
        with self._lock:
            document = self._documents.get(uri)
            return document.version if document is not None and document.out_of_sync is None else None

    def state(self, uri: str) -> DocumentState:
        """A fingerprint of the server's copy, to compare with the editor's (debugging, tests)."""
        with self._lock:
            document = self._require(uri)
            data = document.text.encode("utf-8", "surrogatepass")
            return DocumentState(
                uri=uri,
                version=document.version,
                sha256=hashlib.sha256(data).hexdigest(),
                utf8_bytes=len(data),
                lines=document.line_count(),
                out_of_sync=document.out_of_sync,
            )

    def syntax_tree_at(self, uri: str, version: int, max_bytes: int) -> syntax.Tree | None:
        """The buffer's tree if it is still at `version` (else None: parse the snapshot)."""
        with self._lock:
            document = self._documents.get(uri)
            if document is None or document.version != version:
                return None
            tree = document.syntax_tree(max_bytes)
            # The caller reads the tree outside the lock: hand it a copy.
            return tree.copy() if tree is not None else None

    def offset_at(self, uri: str, line: int, character: int, encoding: str) -> int:
        with self._lock:
            return self._require(uri).offset_at(line, character, encoding)

    def position_at(self, uri: str, offset: int, encoding: str) -> tuple[int, int]:
        with self._lock:
            return self._require(uri).position_at(offset, encoding)

    def uris(self) -> list[str]:
        with self._lock:
            return list(self._documents)

    def _require(self, uri: str) -> Document:
        document = self._documents.get(uri)
        if document is None:
            raise DocumentError(f"{uri} is not open (send textDocument/didOpen first)")
        return document

    def _require_in_sync(self, uri: str) -> Document:
        document = self._require(uri)
        if document.out_of_sync is not None:
            raise DocumentError(_out_of_sync_message(document))
        return document


def _out_of_sync_message(document: Document) -> str:
    return (
        f"{document.uri} is out of step with the editor: {document.out_of_sync}. "
        "No completions for it until it is reopened."
    )
