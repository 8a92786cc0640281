"""Healed text: indentation is forced as the tokenizer writes it, anything else as
the most likely tokens that agree with it."""

from __future__ import annotations

import numpy as np

from lsp_server.decoding import forced_tokens, next_token
from lsp_server.generator import GenerationRequest
from lsp_server.pipeline import _heals_indentation

PIECES = {0: "<eos>", 1: " ", 2: "  ", 3: "    ", 4: " p", 5: "        ", 6: "x"}


class Vocab:
    def is_eog(self, token: int) -> bool:
        return token == 0

    def is_control(self, token: int) -> bool:
        return False

    def token_piece(self, token: int) -> str:
        return PIECES[token]

    def tokenize(self, text: str) -> list[int]:
        return [3] * (len(text) // 4) if text and not text.strip(" ") else [6]


def test_only_a_whole_line_of_whitespace_is_indentation() -> None:
    assert _heals_indentation("def f():\n    ", "    ")
    assert _heals_indentation("    ", "    ")
    assert _heals_indentation("x = 1\r\n\t", "\t")
    assert not _heals_indentation("    sy = ", " ")  # a space after code
    assert not _heals_indentation("def f():\n    ret", "ret")
    assert not _heals_indentation("def f():\n    ", "")


def test_indentation_is_forced_as_written_and_never_overshot() -> None:
    vocab = Vocab()
    request = GenerationRequest(prompt=[1], max_tokens=8, forced_prefix="        ", forced_as_written=True)
    written = forced_tokens(vocab, request)  # type: ignore[arg-type]
    assert written == [3, 3]
    logits = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 9.0, 5.0], dtype=np.float32)  # prefers one 8-space token
    first = next_token(vocab, logits, request, "", [], written)  # type: ignore[arg-type]
    second = next_token(vocab, logits, request, "    ", [first], written)  # type: ignore[arg-type]
    assert (first, second) == (3, 3)


def test_a_healed_space_after_code_lets_the_model_choose_the_word() -> None:
    vocab = Vocab()
    request = GenerationRequest(prompt=[1], max_tokens=8, forced_prefix=" ")
    written = forced_tokens(vocab, request)  # type: ignore[arg-type]
    assert written == []
    logits = np.array([0.0, 5.0, 8.0, 1.0, 6.0, 2.0, 3.0], dtype=np.float32)  # "  " overshoots
    assert next_token(vocab, logits, request, "", [], written) == 4  # type: ignore[arg-type]
