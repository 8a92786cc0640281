"""Candidate lines on a blank line: decoded side by side, judged by the code below."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from lsp_server import ranking
from lsp_server.engine import Engine
from lsp_server.generator import CancelToken
from lsp_server.pipeline import CompletionRequest, Pipeline, Status
from lsp_server.settings import Settings

pytestmark = pytest.mark.model

SOURCE = (
    "import math\n\n\n"
    "def distance(a, b):\n"
    '    """Euclidean distance between two points."""\n'
    "    dx = a.x - b.x\n"
    "    \n"
    "    return math.sqrt(dx * dx + dy * dy)\n"
)
CURSOR = SOURCE.index("    \n") + 4  # on the blank line, after its indentation
SLOW_OK = {"time_budget_inline_ms": 600_000, "cold_start_tokens": 0, "line_rank_below": 1.0}
"""No budget, no quick answer, and ranking on every blank line (the default gate would write
this sure line greedily): the tests look at the ranking itself."""


@pytest.fixture
def pipeline(engine: Engine) -> Iterator[Pipeline]:
    yield Pipeline(engine)
    engine.run_on_engine_thread(lambda model: None).result()  # leave an empty cache behind


def _complete(pipeline: Pipeline, candidates: int, cancel: CancelToken | None = None):  # type: ignore[no-untyped-def]
    request = CompletionRequest(SOURCE, CURSOR, "python", "/geometry.py")
    return pipeline.complete(request, Settings(line_candidates=candidates, **SLOW_OK), cancel)


def test_the_best_judged_candidate_is_offered(pipeline: Pipeline) -> None:
    completion = _complete(pipeline, 3)
    generation = completion.generation
    assert generation is not None and len(generation.candidates) == 3, generation
    usable = [c for c in generation.candidates if c.final]
    assert usable, generation.candidates
    best = max(usable, key=lambda c: c.score)
    assert completion.text and best.final.endswith(completion.text), (completion.text, best)
    # Each usable candidate was judged by the lines below: a log-probability, below zero.
    assert all(c.judged < 0 for c in usable), usable
    assert len({c.text for c in generation.candidates}) == 3  # three different lines
    assert all(c.tokens > 0 and c.judged_tokens > 0 for c in usable), usable
    # The candidates start with the line's most likely first tokens, in order, each with its
    # log-probability after the prompt (read before decoding overwrites the prompt's logits).
    firsts = [c.first_logprob for c in generation.candidates]
    assert all(x <= 0 for x in firsts) and firsts == sorted(firsts, reverse=True), firsts
    assert sum(math.exp(x) for x in firsts) <= 1.0, firsts
    # The completion lists them as they would be inserted: the offered one is its text.
    offered = [c for c in completion.candidates if c.final == completion.text]
    assert len(completion.candidates) == 3 and offered, completion.candidates
    assert max(offered, key=lambda c: c.score).score == best.score


def test_the_first_candidate_is_the_greedy_line(pipeline: Pipeline) -> None:
    greedy = _complete(pipeline, 1)
    ranked = _complete(pipeline, 3)
    assert greedy.generation is not None and not greedy.generation.candidates
    assert ranked.generation is not None
    first = ranked.generation.candidates[0]
    assert greedy.text and first.final.endswith(greedy.text), (greedy.text, first)


def test_ranking_leaves_the_prompt_alone_in_the_cache(pipeline: Pipeline) -> None:
    ranked = _complete(pipeline, 3)
    again = _complete(pipeline, 1)  # same prompt: nothing to evaluate, whatever ranking did
    assert ranked.generation is not None and again.generation is not None
    assert again.generation.evaluated_tokens == 0, again.generation
    assert again.generation.reused_tokens == ranked.generation.prompt_tokens


def test_forks_add_candidates_and_leave_the_prompt_alone_in_the_cache(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every token a near tie: each fork is taken at the first chance, all of them used.
    monkeypatch.setattr(ranking, "FORK_MARGIN", float("inf"))
    request = CompletionRequest(SOURCE, CURSOR, "python", "/geometry.py")
    forked = pipeline.complete(request, Settings(line_candidates=2, line_forks=2, **SLOW_OK))
    assert forked.generation is not None and len(forked.generation.candidates) == 4, forked.generation
    usable = [c for c in forked.candidates if c.final]
    assert forked.text and forked.text in {c.final for c in usable}, forked
    assert forked.text == max(usable, key=lambda c: c.score).final
    again = _complete(pipeline, 1)  # the forks' sequences are gone: the prompt alone is cached
    assert again.generation is not None and again.generation.evaluated_tokens == 0, again.generation


def test_a_cancelled_ranking_answers_cancelled_and_the_next_request_is_whole(pipeline: Pipeline) -> None:
    cancel = CancelToken()
    calls = []
    original = pipeline.engine.model.decode_each

    def decode_each(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            cancel.cancel("test")
        return original(*args, **kwargs)

    pipeline.engine.model.decode_each = decode_each  # type: ignore[method-assign]
    try:
        cancelled = _complete(pipeline, 3, cancel)
    finally:
        del pipeline.engine.model.decode_each
    assert cancelled.status is Status.CANCELLED and not cancelled.text, cancelled
    after = _complete(pipeline, 3)
    assert after.generation is not None and len(after.generation.candidates) == 3
    assert after.text


def test_a_prompt_that_leaves_no_room_for_the_candidates_is_answered_greedily(pipeline: Pipeline) -> None:
    n_ctx = pipeline.engine.model.n_ctx
    filler = "".join(f"value_{i} = {i} * {i}\n" for i in range(n_ctx // 6))
    text = filler + SOURCE
    request = CompletionRequest(text, len(filler) + CURSOR, "python", "/geometry.py")
    # The prompt fills the context but for the greedy line's room: no room for three.
    settings = Settings(line_candidates=3, prefix_tokens=n_ctx, **SLOW_OK)  # type: ignore[arg-type]
    completion = pipeline.complete(request, settings)
    assert completion.generation is not None, completion
    assert completion.generation.prompt_tokens > n_ctx - 3 * 80
    assert completion.generation.candidates == () and completion.text, completion
