"""`Pipeline.complete` without a model: context -> prompt -> generator -> postprocess."""

from __future__ import annotations

from dataclasses import replace

from lsp_server.context import Mode
from lsp_server.generator import CancelToken
from lsp_server.languages import language_for_id
from lsp_server.pipeline import CompletionRequest, Pipeline, Status
from lsp_server.settings import Settings
from tests.unit.fakes import FakeGenerator

SETTINGS = Settings(cold_start_tokens=0, line_candidates=1)


def at(marked: str, language_id: str = "python") -> CompletionRequest:
    """A request at the `|` in `marked` (which is taken out)."""
    offset = marked.index("|")
    return CompletionRequest(marked[:offset] + marked[offset + 1 :], offset, language_id, path="/w/m.py")


def test_an_inline_answer_is_healed_and_cut_at_the_end_of_the_line() -> None:
    generator = FakeGenerator(script="b)\n    print('more')")
    completion = Pipeline(generator).complete(at("def add(a, b):\n    return max(a, |\n"), SETTINGS)
    assert (completion.text, completion.status, completion.mode) == ("b)", Status.OFFERED, Mode.INLINE)
    request = generator.requests[-1]
    assert request.forced_prefix == " "  # the typed space is the model's to write again
    assert completion.generation is not None and completion.generation.finish_reason == "stop"


def test_a_half_typed_word_is_written_again_and_left_out_of_the_answer() -> None:
    generator = FakeGenerator(script="ue\n")
    completion = Pipeline(generator).complete(at("def ok():\n    return Tr|\n"), SETTINGS)
    assert generator.requests[-1].forced_prefix == "Tr"
    assert completion.text == "ue"


def test_a_body_asked_for_after_a_header_is_a_block() -> None:
    generator = FakeGenerator(script="area = 3.14 * r * r\n    return area\n\n\nprint(area(2))")
    completion = Pipeline(generator).complete(at("def area(r):\n    |\n\n\nprint(area(2))\n"), SETTINGS)
    assert completion.mode is Mode.BLOCK and completion.status is Status.OFFERED
    assert completion.text.splitlines()[:2] == ["area = 3.14 * r * r", "    return area"]
    assert "print(area(2))" not in completion.text  # the code after the hole is not written twice


def test_inside_an_identifier_nothing_is_asked_of_the_model() -> None:
    generator = FakeGenerator(script="x")
    completion = Pipeline(generator).complete(at("def ad|d(a, b):\n    pass\n"), SETTINGS)
    assert completion.status is Status.SKIPPED and completion.text == ""
    assert generator.requests == []


def test_a_binary_file_is_skipped() -> None:
    generator = FakeGenerator(script="x")
    completion = Pipeline(generator).complete(at("\x00\x01|"), SETTINGS)
    assert completion.status is Status.SKIPPED and generator.requests == []


def test_a_cancelled_request_offers_nothing() -> None:
    cancel = CancelToken()
    cancel.cancel("superseded")
    completion = Pipeline(FakeGenerator(script="b)")).complete(at("x = max(a, |\n"), SETTINGS, cancel)
    assert completion.status is Status.CANCELLED and completion.text == ""


def test_an_answer_with_nothing_usable_is_empty() -> None:
    completion = Pipeline(FakeGenerator(script="")).complete(at("x = max(a, |\n"), SETTINGS)
    assert completion.status is Status.EMPTY and completion.text == ""
    assert completion.reason == "nothing useful generated"


def test_a_cold_start_answers_from_the_end_of_the_prompt_and_evaluates_the_rest_later() -> None:
    generator = FakeGenerator(script="b)\n", primed=False)
    above = "".join(f"value_{n} = compute(n, {n})\n" for n in range(40))
    settings = replace(SETTINGS, cold_start_tokens=16)
    completion = Pipeline(generator).complete(at(above + "x = max(a, |\n"), settings)
    assert completion.text == "b)"
    quick = generator.requests[0].prompt
    assert len(generator.prefilled) == 1 and len(quick) < len(generator.prefilled[0])
    # Warm now: the next request is built from the whole prompt at once.
    Pipeline(generator).complete(at(above + "x = max(a, |\n"), settings)
    assert list(generator.requests[1].prompt) == generator.prefilled[0]


def test_a_prompt_the_cache_holds_little_of_is_answered_quickly_too() -> None:
    """Not only after start-up: a file just opened, or a jump, is a cold prompt as well."""
    generator = FakeGenerator(script="b)\n")
    settings = replace(SETTINGS, cold_start_tokens=16)
    here = "".join(f"value_{n} = compute(n, {n})\n" for n in range(40))
    Pipeline(generator).complete(at(here + "x = max(a, |\n"), settings)
    Pipeline(generator).complete(at(here + "x = max(a, |\n"), settings)
    assert not generator.prefilled  # warm: the whole prompt each time
    elsewhere = "".join(f"other_{n} = measure(m, {n})\n" for n in range(40))
    completion = Pipeline(generator).complete(at(elsewhere + "y = min(c, |\n"), settings)
    assert completion.text == "b)"
    assert len(generator.prefilled) == 1
    assert len(generator.requests[-1].prompt) < len(generator.prefilled[0])


def test_the_language_is_resolved_once_with_the_request() -> None:
    assert at("x = |").language is language_for_id("python")
    assert at("x = |", "no-such-language").language is None
    typescript = language_for_id("typescript")
    given = CompletionRequest("x", 1, "python", language=typescript)
    assert given.language is typescript  # a caller that knows the language is not second-guessed
