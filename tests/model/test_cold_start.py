"""Cold start on the real default model: the first completion after loading comes from
the text nearest the cursor, and the whole prompt is evaluated in the background."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_server.context import first_statement_end
from lsp_server.engine import Engine, EngineConfig
from lsp_server.generator import CancelToken, GenerationRequest
from lsp_server.models import resolve_model
from lsp_server.pipeline import CompletionRequest, Pipeline
from lsp_server.settings import Settings

pytestmark = pytest.mark.model

ORIGINAL = Path(textwrap.__file__).read_text(encoding="utf-8")
LINE = "        chunks = self._split_chunks("
CURSOR = ORIGINAL.index(LINE) + len(LINE)
SOURCE = ORIGINAL[:CURSOR] + ORIGINAL[ORIGINAL.index("\n", CURSOR) :]  # "text)" taken out
SETTINGS = Settings(time_budget_inline_ms=600_000, time_budget_block_ms=600_000)


@pytest.fixture()
def fresh_engine() -> Iterator[Engine]:
    engine = Engine(EngineConfig(resolve_model().path, n_ctx=2048, n_threads=2, n_batch=64))
    engine.load().result()
    yield engine
    engine.close()


def test_first_answer_from_part_of_the_prompt_then_the_whole_one(fresh_engine: Engine) -> None:
    pipeline = Pipeline(fresh_engine)
    request = CompletionRequest(SOURCE, CURSOR, "python", "/textwrap.py")
    assert not fresh_engine.primed
    first = pipeline.complete(request, SETTINGS)
    second = pipeline.complete(request, SETTINGS)
    assert first.generation is not None and second.generation is not None
    assert fresh_engine.primed
    assert first.generation.prompt_tokens <= SETTINGS.cold_start_tokens + 32  # + template tokens
    assert second.generation.prompt_tokens > 3 * SETTINGS.cold_start_tokens  # the whole prompt
    assert first.text == second.text == "text)", (first, second)  # enough context to agree


def test_no_cold_start_when_turned_off(fresh_engine: Engine) -> None:
    request = CompletionRequest(SOURCE, CURSOR, "python", "/textwrap.py")
    settings = Settings(time_budget_inline_ms=600_000, cold_start_tokens=0)
    first = Pipeline(fresh_engine).complete(request, settings)
    assert first.generation is not None and first.generation.prompt_tokens > 3 * SETTINGS.cold_start_tokens


def test_background_evaluation_fills_the_cache_for_the_next_request(fresh_engine: Engine) -> None:
    tokens = fresh_engine.model.tokenize(SOURCE[:CURSOR], add_bos=True)[-900:]
    short = tokens[-200:]
    cancel = CancelToken()
    fresh_engine.submit(GenerationRequest(short, max_tokens=2, time_budget_s=600), cancel).result()
    background = fresh_engine.prefill(tokens, after=cancel)
    assert background is not None and background.result() >= 0
    follow = fresh_engine.submit(GenerationRequest(tokens, max_tokens=2, time_budget_s=600)).result()
    assert follow.reused_tokens == len(tokens)  # nothing left to evaluate: its logits were kept


def test_background_evaluation_yields_to_a_newer_request(fresh_engine: Engine) -> None:
    tokens = fresh_engine.model.tokenize(SOURCE[:CURSOR], add_bos=True)[-900:]
    first, newer = CancelToken(), CancelToken()
    fresh_engine.submit(GenerationRequest(tokens[-100:], max_tokens=1, time_budget_s=600), first).result()
    fresh_engine.submit(GenerationRequest(tokens[-50:], max_tokens=1, time_budget_s=600), newer).result()
    assert fresh_engine.prefill(tokens, after=first) is None  # something newer was asked
    running = fresh_engine.prefill(tokens, after=newer)
    assert running is not None
    answer = fresh_engine.submit(GenerationRequest(tokens[-60:], max_tokens=1, time_budget_s=600)).result()
    assert answer.finish_reason != "cancelled"
    assert running.result() in (-1, *range(0, len(tokens)))  # superseded, or it had finished


# A long class of getters, each counting the read and returning its field, one left empty:
# a body any model writes the same way, whatever kernels compute its logits (on textwrap's
# `_split_chunks` the base model wrote a docstring, or nothing usable, depending on
# whether llama.cpp repacked the weights). The mechanics are under test, not the model.
FIELDS = [f"{a}{b}" for a in "abcdefgh" for b in "xyz"]
GETTERS = "".join(
    f"    def get_{f}(self):\n        self.reads += 1\n        return self._{f}\n\n" for f in FIELDS
)
BLOCK_OPENER = "    def get_last(self):\n"
BLOCK_SOURCE = "class Record:\n" + GETTERS + BLOCK_OPENER + " " * 8 + "\n"
BLOCK_CURSOR = len(BLOCK_SOURCE) - 1


def test_a_cold_block_gets_its_first_statement_then_the_whole_body(fresh_engine: Engine) -> None:
    pipeline = Pipeline(fresh_engine)
    request = CompletionRequest(BLOCK_SOURCE, BLOCK_CURSOR, "python", "/record.py")
    first = pipeline.complete(request, SETTINGS)
    second = pipeline.complete(request, SETTINGS)
    assert first.mode.value == "block" and first.generation is not None and second.generation is not None
    assert first.generation.prompt_tokens <= SETTINGS.cold_start_tokens + 32
    assert second.generation.prompt_tokens > 2 * SETTINGS.cold_start_tokens  # the whole prompt
    # The first statement only, then (from the whole prompt, now cached) the body.
    # (The "#" after it: a lone comment line ends where a second one starts.)
    assert first.text.strip() and first_statement_end(first.text + "\n#") == len(first.text), first
    assert "\n" in second.text.strip(), second


def test_a_warmed_prompt_leaves_nothing_to_evaluate(fresh_engine: Engine) -> None:
    # After an answer from the completion cache the server warms the document's prompt.
    pipeline = Pipeline(fresh_engine)
    request = CompletionRequest(SOURCE, CURSOR, "python", "/textwrap.py")
    settings = Settings(time_budget_inline_ms=600_000, cold_start_tokens=0)
    assert pipeline.warm(request, settings, CancelToken())
    for _ in range(600):
        if fresh_engine.stats.prefills:
            break
        time.sleep(0.1)
    assert fresh_engine.stats.prefills == 1
    answer = pipeline.complete(request, settings)
    assert answer.generation is not None and answer.generation.evaluated_tokens == 0
    assert answer.text == "text)"


def test_no_warming_where_nothing_would_be_asked(fresh_engine: Engine) -> None:
    pipeline = Pipeline(fresh_engine)
    cancelled = CancelToken()
    cancelled.cancel()
    request = CompletionRequest(SOURCE, CURSOR, "python", "/textwrap.py")
    assert not pipeline.warm(request, SETTINGS, cancelled)
    in_string = SOURCE.index("_whitespace = '") + len("_whitespace = '")  # a skip position
    assert not pipeline.warm(CompletionRequest(SOURCE, in_string, "python", "/t.py"), SETTINGS, CancelToken())
    assert fresh_engine.stats.prefills == 0
