"""How the ranking's judging pass is cut into llama.cpp batches, and where a candidate forks (pure)."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lsp_server.ranking import FORK_MARGIN, OUTPUTS_PER_BATCH, _batches, _near_tie
from tests.unit.fakes import FakeVocab


@given(
    st.integers(min_value=0, max_value=600),
    st.sets(st.integers(min_value=0, max_value=599)),
    st.integers(min_value=1, max_value=256),
)
def test_batches_cover_every_item_once_within_both_limits(count: int, wanted: set[int], size: int) -> None:
    outputs = sorted(i for i in wanted if i < count)
    runs = _batches(count, outputs, size)
    covered = [i for start, end in runs for i in range(start, end)]
    assert covered == list(range(count))
    for start, end in runs:
        assert 0 < end - start <= size
        assert sum(start <= i < end for i in outputs) <= OUTPUTS_PER_BATCH


def test_a_batch_ends_at_the_first_output_that_does_not_fit() -> None:
    assert _batches(100, list(range(10, 60)), 128) == [(0, 26), (26, 42), (42, 58), (58, 100)]


def test_a_candidate_forks_only_at_a_near_tie_between_different_texts() -> None:
    vocab = FakeVocab()
    word, other, split, *_ = (
        t for t in vocab.tokenize("return yield ret ( x") if vocab.token_piece(t) != " "
    )
    logits = np.zeros(max(word, other, split) + 1, dtype=np.float32)
    logits[[word, other, split]] = [5.0, 4.5, 4.9]
    # "ret" is the runner-up, but it is "return" split otherwise: no fork.
    assert _near_tie(vocab, logits, word) is None  # type: ignore[arg-type]
    logits[split] = 0.0
    assert _near_tie(vocab, logits, word) == other  # type: ignore[arg-type]
    logits[other] = 5.0 - FORK_MARGIN - 0.01  # no longer a near tie
    assert _near_tie(vocab, logits, word) is None  # type: ignore[arg-type]
