"""Alternatives branched where the decoding rule first chooses, on a scripted model: which
first tokens are taken, and the same completions side by side or one after another."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from lsp_server.decoding import Branch, other_first_tokens
from lsp_server.generator import CancelToken, GenerationRequest
from lsp_server.ranking import branch_alternatives

PIECES = ["<eos>", "\n", " a", " b", " c", " ab", "x", "y", ")", "<ctl>", " "]
EOS, CONTROL = 0, 9
START = {2: 5.0, 5: 4.5, 3: 4.0, 1: 3.8, 9: 3.7, 4: 3.0, 0: 2.0}
"""After the prompt: " a" most likely, then " ab" (the same text split otherwise), " b", a line
break, a control token, " c"."""
NEXT = {2: 6, 6: 8, 8: EOS, 3: 7, 7: EOS, 4: EOS, 5: 8}
"""What each token is followed by: " a" -> "x" -> ")", " b" -> "y", " c" ends."""
PROMPT = 5


def _logits(favourites: dict[int, float]) -> npt.NDArray[np.float32]:
    row = np.full(len(PIECES), -10.0, dtype=np.float32)
    for token, value in favourites.items():
        row[token] = value
    return row


class ScriptedModel:
    """What the rule and the branches need of a model; it checks that each sequence is
    decoded in order from the cells it holds, none left over from another branch."""

    n_ctx = 64

    def __init__(self, sequences: int) -> None:
        self.n_seq_max = sequences
        self.cells: dict[int, set[int]] = {0: set(range(PROMPT))}
        self.batches: list[int] = []
        self._rows: list[npt.NDArray[np.float32]] = []

    def is_eog(self, token: int) -> bool:
        return token == EOS

    def is_control(self, token: int) -> bool:
        return token == CONTROL

    def token_piece(self, token: int) -> str:
        return PIECES[token]

    def piece(self, token: int) -> bytes:
        return PIECES[token].encode()

    def seq_copy(self, source: int, target: int) -> None:
        self.cells[target] = set(self.cells.get(source, ()))

    def kv_remove(self, start: int, end: int, seq: int = 0) -> bool:
        stop = end if end >= 0 else 1 << 30
        self.cells[seq] = {p for p in self.cells.get(seq, ()) if not start <= p < stop}
        return True

    def decode_each(self, items: Sequence[tuple[int, int, int]]) -> None:
        assert len(items) <= self.n_seq_max and len({seq for _, _, seq in items}) == len(items)
        self.batches.append(len(items))
        self._rows = []
        for token, position, seq in items:
            held = self.cells.setdefault(seq, set())
            assert held == set(range(position)), (seq, position, sorted(held))
            held.add(position)
            self._rows.append(_logits({NEXT.get(token, EOS): 1.0}))

    def logits_ith(self, index: int) -> npt.NDArray[np.float32]:
        return self._rows[index]


def _request(alternatives: int, **changes: object) -> GenerationRequest:
    return GenerationRequest(prompt=list(range(PROMPT)), max_tokens=8, alternatives=alternatives, **changes)  # type: ignore[arg-type]


def _trunk() -> Branch:
    return Branch(seq=0, position=PROMPT, max_tokens=8, deadline=float("inf"))


def test_other_first_tokens_are_other_texts_the_rule_could_begin_with() -> None:
    model = ScriptedModel(8)
    logits = _logits(START)
    on_line = _request(3, start_on_line=True)
    # Not " ab" (it starts with " a"), not the line break, the control token or the end.
    assert other_first_tokens(model, logits, on_line, "", 2, 3) == [3, 4]  # type: ignore[arg-type]
    assert other_first_tokens(model, logits, on_line, "", 2, 1) == [3]  # type: ignore[arg-type]
    # A start some hundred thousand times less likely than the answer's is noise.
    faint = _logits({**START, 4: START[2] - 12.0})
    assert other_first_tokens(model, faint, on_line, "", 2, 3) == [3]  # type: ignore[arg-type]
    stopped = _request(3, start_on_line=True, stop_token_ids=frozenset({3}))
    assert other_first_tokens(model, logits, stopped, "", 2, 3) == [4]  # type: ignore[arg-type]
    # Where the answer itself starts on the next line, so may the alternatives.
    assert other_first_tokens(model, logits, _request(3), "", 1, 3) == [2, 3, 4]  # type: ignore[arg-type]
    # Healed text still to write: only tokens that agree with it (" " is the start of each).
    healed = _request(3, forced_prefix=" ")
    assert other_first_tokens(model, logits, healed, "", 2, 3) == [3, 4]  # type: ignore[arg-type]


@pytest.mark.parametrize("sequences", [8, 2, 1])
def test_the_answer_alone_then_its_alternatives_side_by_side_or_in_turn(sequences: int) -> None:
    model = ScriptedModel(sequences)
    request = _request(2, start_on_line=True)
    answer, candidates = branch_alternatives(
        model,  # type: ignore[arg-type]
        request,
        CancelToken(),
        _trunk(),
        _logits(START),
        [],
        sequences,
    )
    assert answer.text == " ax)" and answer.reason == "eos"
    assert [c.text for c in candidates] == [" ax)", " by", " c"]
    assert (
        all(c.logprob < 0 for c in candidates) and candidates[0].first_logprob > candidates[1].first_logprob
    )
    # The answer alone first, as greedy decoding writes it; then the others side by side.
    assert model.batches == ([1, 1, 1, 2, 1] if sequences > 1 else [1, 1, 1, 1, 1, 1])


def test_a_cancel_stops_the_branches() -> None:
    model = ScriptedModel(8)
    cancel = CancelToken()
    cancel.cancel("superseded")
    trunk, candidates = branch_alternatives(
        model,  # type: ignore[arg-type]
        _request(2, start_on_line=True),
        cancel,
        _trunk(),
        _logits(START),
        [],
        8,
    )
    assert trunk.reason == "cancelled" and candidates == ()


def test_an_alternative_the_time_budget_cut_short_offers_nothing() -> None:
    model = ScriptedModel(8)
    trunk = Branch(seq=0, position=PROMPT, max_tokens=8, deadline=0.0)  # every token past it
    answer, candidates = branch_alternatives(
        model,  # type: ignore[arg-type]
        _request(2, start_on_line=True),
        CancelToken(),
        trunk,
        _logits(START),
        [],
        8,
    )
    assert [c.reason for c in candidates] == ["budget", "budget", "budget"]
    assert candidates[0].final == answer.text == " a"  # the answer is what the budget left
    assert [c.final for c in candidates[1:]] == ["", ""]
