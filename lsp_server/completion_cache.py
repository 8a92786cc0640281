"""Answers without the model while the user types what the completion predicted.

An entry remembers the document text around the cursor when a completion was
made. A later request whose text is that same document with part of the
completion typed in (same text after the cursor, text before the cursor
extended by the start of the completion) gets the rest of the completion at
once. It is keyed by document text, not by request: a re-request at the same
place, or a request after the user typed ahead, both hit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class _Entry:
    prefix: str
    suffix: str
    text: str


class CompletionCache:
    """A small LRU of recent completions per document (thread-safe)."""

    def __init__(self, per_document: int = 16, documents: int = 32) -> None:
        self._entries: OrderedDict[str, list[_Entry]] = OrderedDict()
        self._per_document = per_document
        self._documents = documents
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def store(self, uri: str, prefix: str, suffix: str, text: str) -> None:
        if not text.strip():
            return
        with self._lock:
            entries = self._entries.pop(uri, [])
            entries = [e for e in entries if (e.prefix, e.suffix) != (prefix, suffix)]
            entries.append(_Entry(prefix, suffix, text))
            self._entries[uri] = entries[-self._per_document :]
            while len(self._entries) > self._documents:
                self._entries.popitem(last=False)

    def lookup(self, uri: str, prefix: str, suffix: str, *, count: bool = True) -> str | None:
        """The rest of a cached completion consistent with this text, if any; `count`: as a
        hit or miss (not when the answer comes from the model anyway)."""
        with self._lock:
            entries = list(self._entries.get(uri, ()))
        for entry in reversed(entries):
            typed_len = len(prefix) - len(entry.prefix)
            if not 0 <= typed_len < len(entry.text) or len(suffix) != len(entry.suffix):
                continue
            typed = prefix[len(entry.prefix) :]
            if not entry.text.startswith(typed) or suffix != entry.suffix:
                continue
            if not prefix.startswith(entry.prefix):
                continue
            rest = entry.text[typed_len:]
            if rest.strip():
                self.hits += int(count)
                return rest
        self.misses += int(count)
        return None

    def forget(self, uri: str) -> None:
        with self._lock:
            self._entries.pop(uri, None)
