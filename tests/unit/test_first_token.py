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


def test_ranking_is_skipped_where_the_line_start_is_sure_among_its_candidates() -> None:
    from lsp_server.generator import GenerationRequest
    from lsp_server.ranking import sure_of_the_start

    gated = GenerationRequest(prompt=[1], max_tokens=8, candidates=2, rank_below=0.6)
    # Most of the mass ends the line (<eos>, "\n"): the line's own candidates are " = 1"
    # and "x", and " = 1" takes e^1 / (e^1 + e^0) = 73% of their share.
    sure = np.array([9.0, 8.0, 7.0, 6.0, 1.0, 0.0], dtype=np.float32)
    assert sure_of_the_start(Vocab(), gated, sure)  # type: ignore[arg-type]
    unsure = np.array([9.0, 8.0, 7.0, 6.0, 1.0, 0.9], dtype=np.float32)  # 52%
    assert not sure_of_the_start(Vocab(), gated, unsure)  # type: ignore[arg-type]
    always = GenerationRequest(prompt=[1], max_tokens=8, candidates=2)
    assert not sure_of_the_start(Vocab(), always, sure)  # type: ignore[arg-type]
