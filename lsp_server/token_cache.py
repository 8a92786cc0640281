"""Tokenizations reused across keystrokes.

Every completion request tokenizes up to a thousand tokens of prefix and a few
hundred of suffix, and the prompt builder asks for the same text more than
once (to fit the budget, then to render). With Gemma's tokenizer that is about
1.7 ms per 4 KB each time. While the user types on one line, everything before
that line and the whole suffix are the same at every keystroke, so:

- a text seen recently is answered from a small LRU memo;
- a new text is cut at the start of its last line (unless that line is
  blank: runs of newlines are one token): the part before comes from the memo
  (or is tokenized once and remembered), only the last line is tokenized
  afresh.

The cut is only made for tokenizers that never merge a token across such a
line start, which is checked on the model's own vocabulary when the cache is made
(`splits_at_line_starts`); the result is then exactly the whole text's
tokenization (measured on 2,187 cursor positions in Python, Go and C: all
identical for Gemma 3).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

Tokenize = Callable[[str], list[int]]

_SAMPLES = (
    "def area(width, height):\n    return width * height\n\n\n    # done\n",
    "if (x) {\n\treturn 1;\r\n}\r\n\r\n  else {\n  }\n",
    "x = 1  \n  \n\n\t\ty = [\n        2,\n    ]\n",
    '    """Doc.\n\n    More.\n    """\n    pass\n',
    'func main() {\n\tfmt.Println("hi")\n}\n// end\n',
    "const a = `\n  template ${b}\n`;\n\n\n\nlet é = 'ü';\n",
)


def splits_at_line_starts(tokenize: Tokenize) -> bool:
    """True if cutting at the start of every non-blank line keeps the whole text's tokens.

    (Runs of newlines are single tokens in most vocabularies: blank lines are never cut.)"""
    for sample in _SAMPLES:
        whole = tokenize(sample)
        position = sample.find("\n")
        while 0 <= position < len(sample) - 1:
            cut = position + 1
            if _cuttable(sample, cut) and tokenize(sample[:cut]) + tokenize(sample[cut:]) != whole:
                return False
            position = sample.find("\n", cut)
    return True


def _cuttable(text: str, cut: int) -> bool:
    return 0 < cut < len(text) and text[cut] not in "\r\n"


class TokenCache:
    """A thread-safe memo of tokenizations, with the last-line split described above."""

    def __init__(
        self, tokenize: Tokenize, size: int = 32, min_split_chars: int = 256, max_chars: int = 65536
    ) -> None:
        self._tokenize = tokenize
        self._size = size
        self._max_chars = max_chars
        self._min_split_chars = min_split_chars
        self._memo: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.split = splits_at_line_starts(tokenize)
        self.hits = 0
        self.misses = 0

    def __call__(self, text: str) -> list[int]:
        if len(text) > self._max_chars:  # whole files, minified lines: not worth keeping
            return self._tokenize(text)
        found = self._get(text)
        if found is not None:
            return list(found)
        cut = (
            text.rfind("\n", 0, len(text) - 1) + 1 if self.split and len(text) >= self._min_split_chars else 0
        )
        if _cuttable(text, cut):
            head = self._get(text[:cut])
            if head is None:
                head = tuple(self._tokenize(text[:cut]))
                self._put(text[:cut], head)
            tokens = head + tuple(self._tokenize(text[cut:]))
        else:
            tokens = tuple(self._tokenize(text))
        self._put(text, tokens)
        return list(tokens)

    def _get(self, text: str) -> tuple[int, ...] | None:
        with self._lock:
            found = self._memo.get(text)
            if found is None:
                self.misses += 1
                return None
            self._memo.move_to_end(text)
            self.hits += 1
            return found

    def _put(self, text: str, tokens: tuple[int, ...]) -> None:
        with self._lock:
            self._memo[text] = tokens
            self._memo.move_to_end(text)
            while len(self._memo) > self._size:
                self._memo.popitem(last=False)
