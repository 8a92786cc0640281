"""Several suggestions in one answer (`inlineSuggestions`), without a model: the first is the
answer a request gets today; alternatives are distinct, non-empty, best first, and cost
nothing on requests made while typing."""

from __future__ import annotations

from dataclasses import replace

from lsp_server.context import Mode
from lsp_server.pipeline import Completion, CompletionRequest, Pipeline, Status
from lsp_server.service import CompletionService
from lsp_server.settings import Settings
from tests.unit.fakes import FakeGenerator
from tests.unit.test_pipeline import at

SETTINGS = Settings(cold_start_tokens=0, line_candidates=1, inline_suggestions=5)
HOLE = "def pick(a, b):\n    return max(a, |\n"
BLANK = "def f(a):\n    x = a\n    |\n    return x\n"


def explicit(request: CompletionRequest) -> CompletionRequest:
    return replace(request, explicit=True)


def test_a_request_made_while_typing_asks_for_no_alternatives() -> None:
    generator = FakeGenerator(script="b)\n", alternatives=(("a)\n", -1.0),))
    completion = Pipeline(generator).complete(at(HOLE), SETTINGS)
    assert generator.requests[-1].alternatives == 0
    assert completion.items == ("b)",) and completion.alternatives == ()


def test_an_explicit_request_keeps_the_answer_first_then_distinct_alternatives_by_score() -> None:
    alternatives = (
        ("b)\n", -0.2),  # the answer's own text, from another first token: not twice
        ("c)\n", -3.0),
        ("\n", -0.1),  # nothing on the line: empty once post-processed
        ("d)\n", -1.0),
    )
    generator = FakeGenerator(script="b)\n", alternatives=alternatives)
    pipeline = Pipeline(generator)
    typing = pipeline.complete(at(HOLE), SETTINGS)
    asked = pipeline.complete(explicit(at(HOLE)), SETTINGS)
    assert generator.requests[-1].alternatives == SETTINGS.inline_suggestions - 1
    assert asked.text == typing.text == "b)"
    assert asked.items == ("b)", "d)", "c)")  # by score: -1.0 before -3.0
    assert asked.status is Status.OFFERED


def test_the_setting_bounds_what_is_asked_for() -> None:
    generator = FakeGenerator(script="b)\n", alternatives=(("c)\n", -1.0), ("d)\n", -2.0)))
    two = Pipeline(generator).complete(explicit(at(HOLE)), replace(SETTINGS, inline_suggestions=2))
    assert generator.requests[-1].alternatives == 1 and two.items == ("b)", "c)")
    one = Pipeline(generator).complete(explicit(at(HOLE)), replace(SETTINGS, inline_suggestions=1))
    assert generator.requests[-1].alternatives == 0 and one.items == ("b)",)


def test_ranked_candidates_are_free_alternatives_of_a_request_made_while_typing() -> None:
    ranked = (("y = x * 2\n", -1.0), ("z = 3\n", -0.5), ("y = x * 2\n", -2.0), ("\n", 0.0), ("w = 0\n", -4.0))
    generator = FakeGenerator(ranked=ranked)
    settings = replace(SETTINGS, line_candidates=3, inline_suggestions=3)
    completion = Pipeline(generator).complete(at(BLANK), settings)
    request = generator.requests[-1]
    assert request.candidates == 3 and request.alternatives == 0
    # The best usable candidate is the answer, as ranking picks it; then the others by score,
    # each once, the empty one left out, as many as the setting allows.
    assert completion.items == ("z = 3", "y = x * 2", "w = 0")
    fewer = Pipeline(generator).complete(at(BLANK), replace(settings, inline_suggestions=2))
    assert fewer.items == ("z = 3", "y = x * 2")


def test_where_the_answer_is_empty_an_explicit_request_offers_the_best_alternative() -> None:
    generator = FakeGenerator(script="\n", alternatives=(("c)\n", -2.0), ("d)\n", -1.0)))
    pipeline = Pipeline(generator)
    assert pipeline.complete(at(HOLE), SETTINGS).status is Status.EMPTY
    asked = pipeline.complete(explicit(at(HOLE)), SETTINGS)
    assert asked.status is Status.OFFERED and asked.items == ("d)", "c)")


def test_no_alternatives_where_the_context_has_no_room_for_them() -> None:
    generator = FakeGenerator(script="b)\n", alternatives=(("c)\n", -1.0),))
    prompt_tokens = len(generator.vocab.tokenize(HOLE.replace("|", "")))
    generator.vocab.n_ctx = prompt_tokens + 2 * SETTINGS.max_tokens_inline  # type: ignore[misc]
    completion = Pipeline(generator).complete(explicit(at(HOLE)), SETTINGS)
    assert generator.requests[-1].alternatives == 0 and completion.items == ("b)",)


def test_an_answer_led_by_what_the_editor_shows() -> None:
    completion = Completion("b)", 0, Mode.INLINE, "", Status.OFFERED, alternatives=("c)", "d)"))
    assert completion.led_by("b)", 3) is completion
    assert completion.led_by("d)", 3).items == ("d)", "b)", "c)")
    assert completion.led_by("e)", 2).items == ("e)", "b)")
    empty = Completion("", 0, Mode.INLINE, "", Status.EMPTY)
    assert empty.led_by("e)", 3).items == ("e)",) and empty.led_by("e)", 3).status is Status.OFFERED


async def test_an_explicit_request_keeps_the_cached_answer_first_and_asks_the_model() -> None:
    """VS Code asks again (Invoked) when the user cycles: the ghost text it shows, which the
    completion cache answered, stays the first item; the model adds the alternatives."""
    service = CompletionService(SETTINGS)
    generator = FakeGenerator(script="b)\n", alternatives=(("c)\n", -1.0),))
    service.slot.engine = generator  # type: ignore[assignment]
    try:
        uri, text = "file:///w/m.py", HOLE.replace("|", "")
        service.open(uri, "python", 1, text)
        line, character = 1, len("    return max(a,")
        typing = await service.complete(uri, line, character, "utf-16")
        assert typing is not None and typing.completion.items == ("b)",)
        again = await service.complete(uri, line, character, "utf-16")
        assert again is not None and again.completion.status is Status.CACHED and service.cache.hits == 1
        asked_before = len(generator.requests)
        generator.script = "q)\n"  # the model would answer otherwise now
        asked = await service.complete(uri, line, character, "utf-16", explicit=True)
        assert asked is not None and len(generator.requests) == asked_before + 1
        assert asked.completion.items == ("b)", "q)", "c)")
        assert service.cache.hits == 1  # not an answer from the cache: not counted as one
    finally:
        service.slot.engine = None
        service.stop()
