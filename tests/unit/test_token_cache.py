"""The tokenization memo: exact results, fewer calls, and no cut where a tokenizer merges."""

from __future__ import annotations

import re

from lsp_server.token_cache import TokenCache, splits_at_line_starts


class Counting:
    """A toy tokenizer: runs of newlines, runs of spaces, words, single other characters."""

    pattern = re.compile(r"\n+|[ \t]+|\w+|.", re.S)

    def __init__(self) -> None:
        self.chars = 0
        self.vocab: dict[str, int] = {}

    def __call__(self, text: str) -> list[int]:
        self.chars += len(text)
        return [self.vocab.setdefault(piece, len(self.vocab)) for piece in self.pattern.findall(text)]


class MergesNewlineAndIndent(Counting):
    pattern = re.compile(r"\n[ \t]*|[ \t]+|\w+|.", re.S)


CODE = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(40))


def test_typing_on_a_line_tokenizes_only_that_line_again() -> None:
    raw = Counting()
    cache = TokenCache(raw, min_split_chars=16)
    assert cache.split
    before = CODE + "    total = "
    for typed in ["s", "su", "sum", "sum(", "sum(x"]:
        text = before + typed
        expected = raw.pattern.findall(text)
        got = cache(text)
        assert [next(k for k, v in raw.vocab.items() if v == t) for t in got] == expected
    raw.chars = 0
    cache(before + "sum(x)")
    assert raw.chars == len("    total = sum(x)")  # the lines above came from the memo


def test_a_text_seen_before_is_not_tokenized_again_and_results_are_copies() -> None:
    raw = Counting()
    cache = TokenCache(raw)
    first = cache(CODE)
    raw.chars = 0
    second = cache(CODE)
    assert first == second and raw.chars == 0
    second.pop()
    assert cache(CODE) == first  # callers may change what they get


def test_a_blank_last_line_is_not_cut_out_of_its_newline_run() -> None:
    raw = Counting()
    cache = TokenCache(raw, min_split_chars=1)
    text = "x = 1\n\n"
    assert cache(text) == raw(text)


def test_a_tokenizer_that_merges_across_line_starts_is_never_cut() -> None:
    raw = MergesNewlineAndIndent()
    assert not splits_at_line_starts(raw)
    cache = TokenCache(raw, min_split_chars=1)
    text = CODE + "    y"
    assert not cache.split and cache(text) == raw(text)


def test_the_memo_stays_small() -> None:
    cache = TokenCache(Counting(), size=4, max_chars=100)
    for i in range(50):
        cache(f"line {i}\n" * 3)
    assert len(cache._memo) <= 4
    long = "x" * 1000
    assert cache(long) == cache(long) and long not in cache._memo
