"""Alternatives on the real model: the answer first, as a request made while typing gets it;
others beside it, distinct; the prompt alone left in the cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from lsp_server.engine import Engine
from lsp_server.pipeline import Completion, CompletionRequest, Pipeline
from lsp_server.settings import Settings
from tests.lsp.helpers import ROOT

pytestmark = pytest.mark.model

DEMO = (ROOT / "examples" / "demo.py").read_text()
SETTINGS = Settings(time_budget_inline_ms=600_000, cold_start_tokens=0, inline_suggestions=3)
PLACES = ("    sy = ", "    sx = ", "    n = ", "    dy = ")


@pytest.fixture
def pipeline(engine: Engine) -> Iterator[Pipeline]:
    yield Pipeline(engine)
    engine.run_on_engine_thread(lambda model: None).result()  # leave an empty cache behind


def _request(marker: str, *, explicit: bool = False) -> CompletionRequest:
    """A request after `marker`, the rest of its line taken out."""
    at = DEMO.index(marker) + len(marker)
    text = DEMO[:at] + DEMO[DEMO.index("\n", at) :]
    return CompletionRequest(text, at, "python", "/w/demo.py", explicit=explicit)


def _both(pipeline: Pipeline, marker: str) -> tuple[Completion, Completion]:
    typing = pipeline.complete(_request(marker), SETTINGS)
    asked = pipeline.complete(_request(marker, explicit=True), SETTINGS)
    return typing, asked


def test_the_answer_comes_first_and_the_alternatives_differ(pipeline: Pipeline) -> None:
    typing, asked = _both(pipeline, "    sy = ")
    assert typing.items == (typing.text,) and "p.y" in typing.text
    assert asked.items[0] == typing.text
    assert len(asked.items) == 3 and len(set(asked.items)) == 3, asked.items
    assert all("\n" not in item for item in asked.items)  # inline: the same stop rules
    generation = asked.generation
    assert generation is not None and len(generation.candidates) == 3
    assert generation.text == generation.candidates[0].text  # the answer's branch is the first


def test_the_prompt_alone_is_left_in_the_cache(pipeline: Pipeline) -> None:
    _, asked = _both(pipeline, "    sx = ")
    again = pipeline.complete(_request("    sx = "), SETTINGS)
    assert asked.generation is not None and again.generation is not None
    assert again.generation.evaluated_tokens == 0 and again.text == asked.text


def test_one_sequence_writes_the_same_suggestions_in_turn(
    pipeline: Pipeline, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    side_by_side = [_both(pipeline, marker)[1].items for marker in PLACES]
    monkeypatch.setattr(engine.model, "n_seq_max", 1)
    in_turn = [pipeline.complete(_request(m, explicit=True), SETTINGS).items for m in PLACES]
    assert [items[0] for items in in_turn] == [items[0] for items in side_by_side]
    assert in_turn == side_by_side


def test_fewer_suggestions_ask_for_fewer(pipeline: Pipeline) -> None:
    one = pipeline.complete(_request("    sy = ", explicit=True), replace(SETTINGS, inline_suggestions=1))
    assert one.generation is not None and one.generation.candidates == () and len(one.items) == 1
