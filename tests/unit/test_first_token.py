"""When finishing a line with a FIM model, the first token stays on the line."""

from __future__ import annotations

import numpy as np

from lsp_server.decoding import _token_on_this_line

PIECES = {0: "<eos>", 1: "\n", 2: "\n    x", 3: "<|file_sep|>", 4: " = 1", 5: "x"}


class Vocab:
    def is_eog(self, token: int) -> bool:
        return token == 0

    def is_control(self, token: int) -> bool:
        return token == 3

    def token_piece(self, token: int) -> str:
        return PIECES[token]


def test_the_best_token_that_neither_stops_nor_breaks_the_line() -> None:
    logits = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0], dtype=np.float32)
    assert _token_on_this_line(Vocab(), logits, frozenset()) == 4  # type: ignore[arg-type]
    assert _token_on_this_line(Vocab(), logits, frozenset({4})) == 5  # type: ignore[arg-type]


def test_none_when_every_candidate_stops_or_breaks_the_line() -> None:
    logits = np.array([9.0, 8.0, 7.0, 6.0, -1e9, -1e9], dtype=np.float32)
    assert _token_on_this_line(Vocab(), logits, frozenset({4, 5})) is None  # type: ignore[arg-type]
