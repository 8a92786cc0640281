"""Context from the rest of the project, for the prompt: definitions and similar code.

Sources, each switchable and each within one shared token budget and a time
limit:

* definitions - signatures of what the current file imports (resolved to
  workspace files) and of the names it uses near the cursor or elsewhere
  (found in the workspace index, nearest the imported folders first), long
  classes abridged so that more names fit, most relevant last so it sits
  next to the code;
* buffers     - chunks of other open buffers and of recently edited regions,
  in a ring, ranked by how many identifiers they share with the lines
  around the cursor;
* recent      - ranges around the places where completions were asked for
  (what the user was looking at);
* similar     - windows of the files the current one imports and of its folder
  that share the most identifiers with the lines above the cursor (sibling
  code written on the same pattern, often the very line wanted).

The selection depends on the lines above the cursor, not on the line being
typed, and is reused while that does not change: the extra context sits at
the start of the prompt, and keeping it identical keeps the KV cache valid.
When the user moves on to a new line, the shown context stays as long as it
still holds the best item of the new choice (see `_still_covers`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lsp_server import snippets
from lsp_server.languages import LanguageSpec, language_for_path
from lsp_server.project_index import ProjectIndex
from lsp_server.prompt import CHARS_PER_TOKEN
from lsp_server.symbols import Definition, FileSymbols, read_symbols, supported
from lsp_server.templates import ContextFile

if TYPE_CHECKING:
    from lsp_server.settings import Settings

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
CHUNK_LINES = 32
WINDOW_LINES = 40


@dataclass(frozen=True)
class ContextBudget:
    tokens: int
    definitions: bool = True
    buffers: bool = True
    recent: bool = True
    similar: bool = True
    time_limit_s: float = 0.05

    @classmethod
    def from_settings(cls, settings: Settings) -> ContextBudget:
        return cls(
            tokens=settings.context_tokens,
            definitions=settings.context_definitions,
            buffers=settings.context_buffers,
            recent=settings.context_recent,
            similar=settings.context_similar,
            time_limit_s=settings.context_time_limit_ms / 1000,
        )


@dataclass(frozen=True)
class _Chunk:
    path: Path
    start_line: int
    text: str
    words: frozenset[str]
    kind: str  # "buffer", "edit" or "recent"


def _words(text: str) -> frozenset[str]:
    return frozenset(_IDENTIFIER.findall(text))


def _lines_around(text: str, line: int, before: int, after: int) -> tuple[int, str]:
    lines = text.split("\n")
    start = max(0, line - before)
    return start, "\n".join(lines[start : line + after])


class ProjectContext:
    """Collects context while the user works; `gather` picks some for one request."""

    def __init__(self, index: ProjectIndex, ring_size: int = 24) -> None:
        self.index = index
        self._ring: OrderedDict[tuple[Path, int, str], _Chunk] = OrderedDict()
        self._ring_size = ring_size
        self._lock = threading.Lock()
        self._last: dict[Path, tuple[tuple[object, ...], list[ContextFile]]] = {}
        self._open: set[Path] = set()
        self._ring_version = 0
        """Counts changes to the ring: a request's cached choice holds while it is unchanged."""

    # -- what the user does ------------------------------------------------------------

    def note_open(self, path: Path, language_id: str, text: str) -> None:
        self._open.add(path)
        self.index.set_overlay(path, language_id, text)
        start, chunk = _lines_around(text, 0, 0, CHUNK_LINES)
        self._remember(_Chunk(path, start, chunk, _words(chunk), "buffer"))

    def note_text(self, path: Path, language_id: str, text: str) -> None:
        """An open buffer's new text: its definitions are read again when next needed."""
        self.index.set_overlay(path, language_id, text)

    def note_change(self, path: Path, language_id: str, text: str, line: int) -> None:
        """An edit at `line`: new text, and the region around it joins the ring."""
        self.index.set_overlay(path, language_id, text)
        start, chunk = _lines_around(text, line, CHUNK_LINES // 2, CHUNK_LINES // 2)
        self._remember(_Chunk(path, start - start % 8, chunk, _words(chunk), "edit"))

    def note_cursor(self, path: Path, text: str, line: int) -> None:
        start, chunk = _lines_around(text, line, CHUNK_LINES // 2, CHUNK_LINES // 2)
        self._remember(_Chunk(path, start - start % 8, chunk, _words(chunk), "recent"))

    def note_close(self, path: Path) -> None:
        """A closed file is no open buffer, and what was looked at there is behind the user:
        its "buffer" and "recent" chunks go; the regions the user edited stay in the ring.
        A prompt that shows its chunks chooses its context afresh."""
        self.index.drop_overlay(path)
        self._open.discard(path)
        shown_as = self.display(path)
        for other, (_, chosen) in list(self._last.items()):
            if any(item.path == shown_as for item in chosen):
                self._last.pop(other, None)
        with self._lock:
            for key in [k for k, chunk in self._ring.items() if k[0] == path and chunk.kind != "edit"]:
                del self._ring[key]
                self._ring_version += 1

    def _remember(self, chunk: _Chunk) -> None:
        if not chunk.text.strip():
            return
        with self._lock:
            # One chunk per region of a file and kind: a newer one replaces it.
            key = (chunk.path, chunk.start_line // CHUNK_LINES, chunk.kind)
            if self._ring.get(key) == chunk:
                self._ring.move_to_end(key)
                return
            self._ring.pop(key, None)
            self._ring[key] = chunk
            self._ring_version += 1
            while len(self._ring) > self._ring_size:
                self._ring.popitem(last=False)

    @property
    def ring_size(self) -> int:
        with self._lock:
            return len(self._ring)

    # -- one request -------------------------------------------------------------------------

    def gather(
        self, path: Path, language: LanguageSpec | None, text: str, offset: int, budget: ContextBudget
    ) -> list[ContextFile]:
        if budget.tokens <= 0:
            return []
        line_start = text.rfind("\n", 0, offset) + 1
        above = text[:line_start]
        window = "\n".join(above.split("\n")[-WINDOW_LINES:])
        window_words = _words(window)
        key = (window_words, budget, self._ring_version)
        previous = self._last.get(path)
        if previous is not None and previous[0] == key:
            return previous[1]
        deadline = time.perf_counter() + budget.time_limit_s
        chars = int(budget.tokens * CHARS_PER_TOKEN)
        picked: list[tuple[float, ContextFile]] = []
        spec = language
        symbols = None
        related: list[Path] = []
        if spec is not None and supported(spec) and (budget.definitions or budget.similar):
            symbols = read_symbols(spec, str(path), text.encode("utf-8", "surrogatepass"))
            related = self.index.related_files(path, symbols)
        if budget.definitions and symbols is not None:
            picked += self._definitions(path, symbols, related, text, offset, window_words, deadline, chars)
        if budget.similar:
            picked += self._similar_code(path, related, above, deadline)
        if budget.buffers or budget.recent:
            kinds = {"buffer", "edit"} if budget.buffers else set()
            kinds |= {"recent"} if budget.recent else set()
            picked += self._similar_chunks(path, window_words, kinds)
        chosen = _within_budget(picked, chars)
        if previous is not None and previous[0][1] == budget and _still_covers(previous[1], chosen):
            chosen = previous[1]  # keep the prompt's start, and the KV cache behind it
        self._last[path] = (key, chosen)
        return chosen

    def _definitions(
        self,
        path: Path,
        symbols: FileSymbols,
        related_files: list[Path],
        text: str,
        offset: int,
        window_words: frozenset[str],
        deadline: float,
        chars: int,
    ) -> list[tuple[float, ContextFile]]:
        """Signatures ranked one by one, then grouped by file: a large related file must
        not take the whole budget with what the code does not use."""
        defined_here = {d.name for d in symbols.definitions}
        imported = frozenset(symbols.imported_names)
        # Names the file uses elsewhere (below the cursor too) are what its code works with:
        # in Go, where a package's own names need no import, the best clue there is.
        start = max(0, min(offset - FILE_WORDS_CHARS // 2, len(text) - FILE_WORDS_CHARS))
        in_file = imported | _words(text[start : start + FILE_WORDS_CHARS])
        family = _family(symbols.language)  # a Go file gets no C definition from testdata/
        found: dict[tuple[str, int], tuple[float, Definition]] = {}
        near = {path.parent, *(related.parent for related in related_files)}
        for related in related_files:
            if time.perf_counter() > deadline:
                break
            other = self.index.symbols(related)
            named = _module_name(related) in window_words  # `events.` is written near the cursor
            for definition in other.definitions if other else ():
                found[(definition.path, definition.line)] = (
                    _relevance(definition, window_words, in_file, named),
                    definition,
                )
        # Names near the cursor, and names imported one by one that the imported file does not
        # define itself (a package's __init__.py or a TypeScript barrel re-exporting them).
        reexported = imported - {d.name for _, d in found.values()}
        # Where names must be imported, a bare name near the cursor that is not is a local, a
        # parameter or a builtin: looking it up finds namesakes elsewhere in the project.
        looked_up = window_words if symbols.language not in _IMPORTING else window_words & imported
        for name in sorted((looked_up | reexported) - defined_here):
            if time.perf_counter() > deadline:
                break
            same_language = [d for d in self.index.lookup(name) if _family(_language_of(d.path)) == family]
            lookup_score = LOOKUP_SCORE if name in window_words else REEXPORTED_SCORE
            for definition in _nearest(same_language, near)[:3]:
                if Path(definition.path) != path:
                    key = (definition.path, definition.line)
                    score = max(found.get(key, (0.0, definition))[0], lookup_score)
                    found[key] = (score, definition)
        grouped: dict[str, list[tuple[float, Definition, str]]] = {}
        used = 0
        longest = max(MIN_DEFINITION_CHARS, chars // 3)
        # Equally relevant: the shorter first, so that the budget holds more of the names.
        for score, definition in sorted(
            found.values(), key=lambda item: (-item[0], len(item[1].signature), item[1].path, item[1].line)
        ):
            signature = _abridged(definition.signature, longest)
            size = len(signature) + 2 + (0 if definition.path in grouped else len(definition.path) + 8)
            if used + size > chars:
                continue  # a smaller one further down may still fit
            grouped.setdefault(definition.path, []).append((score, definition, signature))
            used += size
        results = []
        for file_path, items in grouped.items():
            items.sort(key=lambda item: item[1].line)
            body = "\n\n".join(signature for _, _, signature in items)
            results.append((max(s for s, _, _ in items), ContextFile(self.display(Path(file_path)), body)))
        return results

    def _similar_code(
        self, path: Path, related: list[Path], above: str, deadline: float
    ) -> list[tuple[float, ContextFile]]:
        """Windows of the imported files and of the folder most like the lines above the cursor."""
        files = [f for f in dict.fromkeys([*related, *self.index.neighbours(path)]) if f != path]
        candidates: list[tuple[str, snippets.Window]] = []
        for file in files[:SIMILAR_FILES]:
            if time.perf_counter() > deadline:
                break
            candidates += [(str(file), window) for window in self.index.windows(file)]
        best = snippets.most_similar(candidates, snippets.query(above), SIMILAR_WINDOWS, SIMILAR_LEAST)
        return [
            (SIMILAR_SCORE + score, ContextFile(self.display(Path(file)), window.text))
            for score, file, window in best
        ]

    def _similar_chunks(
        self, path: Path, window_words: frozenset[str], kinds: set[str]
    ) -> list[tuple[float, ContextFile]]:
        with self._lock:
            chunks = [c for c in self._ring.values() if c.kind in kinds and c.path != path]
        results = []
        seen: set[str] = set()
        for chunk in chunks:
            if not chunk.words or chunk.text in seen:
                continue
            seen.add(chunk.text)
            overlap = snippets.jaccard(chunk.words, window_words)
            open_edit = chunk.kind == "edit" and chunk.path in self._open
            if overlap >= (OPEN_EDIT_OVERLAP if open_edit else MIN_CHUNK_OVERLAP):
                results.append((overlap, ContextFile(self.display(chunk.path), chunk.text)))
        return results

    def display(self, path: Path) -> str:
        """How a file is named in prompts: relative to its workspace folder."""
        for root in self.index.roots:
            if path.is_relative_to(root):
                return str(path.relative_to(root))
        return path.name


USED_SCORE = 2.0
"""A definition whose name is written near the cursor."""
IN_FILE_SCORE = 1.8
"""A definition the file imports by name (`from m import a`) or uses away from the cursor:
the code is about to use it."""
FILE_WORDS_CHARS = 65536
"""How much of a file (around the cursor) is read for the names it uses."""
LOOKUP_SCORE = 1.5
"""A definition found in the workspace index for a name near the cursor."""
REEXPORTED_SCORE = 1.4
"""A definition found in the workspace index for a name imported from a file that only re-exports it."""
RELATED_SCORE = 0.5
"""Any other definition of an imported file (or a Go sibling), raised by how much its header
shares with the code near the cursor and when the module's own name is written there."""


MIN_CHUNK_OVERLAP = 0.15
"""Least share of identifiers a ring chunk must have in common with the lines above the
cursor. Between 32-line chunks of 40 unrelated standard-library modules the share is
0.04 at the median and above 0.15 for 0.1% of pairs (above 0.05, the old floor, for 36%:
prompt tokens on every request that bought nothing); between chunks of one module, 25% of
pairs are above it (docs/benchmarks.md, whole lines)."""

OPEN_EDIT_OVERLAP = 0.05
"""What the user is editing in another open buffer is their work at hand: it keeps the
old, lower floor (a new function there shares only its name with a short window)."""

SIMILAR_SCORE = 1.0
"""Similar code ranks by its similarity above this (1.0 + Jaccard): a near copy of the lines
above the cursor as high as a definition used there, a loose match below the imported names."""
SIMILAR_WINDOWS = 2
SIMILAR_LEAST = 0.2
"""Least share of identifiers in common for a window to be shown at all."""
SIMILAR_FILES = 60
"""Files searched for similar code: those imported, then those of the same folder."""


def _language_of(path: str) -> str | None:
    spec = language_for_path(path)
    return spec.id if spec is not None else None


_IMPORTING = frozenset({"python", "javascript", "typescript", "tsx"})
"""Languages whose files name every outside definition they use in an import."""

_FAMILIES = {"javascript": "js", "typescript": "js", "tsx": "js", "c": "c", "cpp": "c"}


def _family(language: str | None) -> str | None:
    """Languages whose files use each other's definitions."""
    return _FAMILIES.get(language, language) if language else None


MIN_DEFINITION_CHARS = 240
"""A class's summary is cut to a third of the budget (at least this): the header and first
members say what it is, and the room left holds the other names the code uses."""


def _abridged(signature: str, longest: int) -> str:
    """The signature's first lines within `longest` characters, marked as cut."""
    if len(signature) <= longest:
        return signature
    lines = signature.split("\n")
    closing = lines[-1] if lines[-1].strip() == "}" else None
    indent = lines[1][: len(lines[1]) - len(lines[1].lstrip())] if len(lines) > 1 else "    "
    kept, size = [lines[0]], len(lines[0])
    for line in lines[1:]:
        if size + len(line) + 1 > longest - len(indent) - 6:
            break
        kept.append(line)
        size += len(line) + 1
    kept.append(indent + "...")
    if closing is not None:
        kept.append(closing)
    return "\n".join(kept)


def _nearest(definitions: list[Definition], near: set[Path]) -> list[Definition]:
    """Of several definitions of one name, those under the folders of this file and of the
    files it imports, when there are any: a Go name without a package is its own package's,
    and `from .abc import TaskGroup` means anyio/abc's TaskGroup, not a backend's class."""
    close = [d for d in definitions if any(Path(d.path).is_relative_to(folder) for folder in near)]
    return close or definitions


def _module_name(path: Path) -> str:
    return path.parent.name if path.stem in ("__init__", "index", "mod") else path.stem


def _relevance(
    definition: Definition, window_words: frozenset[str], in_file: frozenset[str], module_named: bool
) -> float:
    if definition.name in window_words:
        return USED_SCORE
    if definition.name in in_file:
        return IN_FILE_SCORE
    header = _words(definition.signature.split("\n", 1)[0]) - {definition.name}
    shared = len(header & window_words) / len(header) if header else 0.0
    return RELATED_SCORE + (0.5 if module_named else 0.0) + 0.4 * shared


def within_budget(files: Sequence[ContextFile], tokens: int) -> list[ContextFile]:
    """Files a client chose, in its order, within `tokens`: the last ones kept (they sit
    nearest the code, where a client puts what matters most)."""
    picked = [(float(rank), item) for rank, item in enumerate(files)]
    return _within_budget(picked, int(tokens * CHARS_PER_TOKEN))


def _within_budget(picked: list[tuple[float, ContextFile]], chars: int) -> list[ContextFile]:
    """The best items that fit, ordered least relevant first (the best sits by the code)."""
    chosen: list[tuple[float, ContextFile]] = []
    used = 0
    for score, candidate in sorted(picked, key=lambda pair: (-pair[0], pair[1].path)):
        item = candidate
        size = len(item.text) + len(item.path) + 8
        if used + size > chars:
            if used + 200 > chars:
                continue  # a shorter one further down may still fit whole
            text = item.text[: max(0, chars - used - len(item.path) - 8)]
            item = ContextFile(item.path, text[: text.rfind("\n")] if "\n" in text else text)
            size = len(item.text) + len(item.path) + 8
            if not item.text.strip():
                continue
        chosen.append((score, item))
        used += size
    return _one_per_file([item for _, item in reversed(chosen)])


def _still_covers(shown: list[ContextFile], fresh: list[ContextFile]) -> bool:
    """Whether the context in the prompt may stay although the cursor's lines moved on.

    Any change to it costs evaluating the whole prompt again (every token after it
    shifts), seconds in which keystrokes go unanswered. So it stays while it holds
    all of the fresh choice or at least its best item (the last), the one nearest
    the code; the lesser items may lag behind until the best one changes."""
    kept = set(shown)
    return set(fresh) <= kept or fresh[-1] in kept


def _one_per_file(files: list[ContextFile]) -> list[ContextFile]:
    """A file chosen twice (its signatures, and a window like the cursor's lines) is shown once,
    where its more relevant part was, under one header."""
    parts: dict[str, list[str]] = {}
    for item in files:
        parts.setdefault(item.path, []).append(item.text)
    last = {item.path: position for position, item in enumerate(files)}
    ordered = sorted(parts, key=last.__getitem__)
    return [ContextFile(path, "\n\n".join(parts[path])) for path in ordered]
