"""How the ranking's judging pass is cut into llama.cpp batches (pure)."""

from hypothesis import given
from hypothesis import strategies as st

from lsp_server.ranking import OUTPUTS_PER_BATCH, _batches


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
