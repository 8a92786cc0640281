"""The bench's floor: the server's prompts through llama-cpp-python give the server's tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_server.bench.floor import FloorGenerator
from lsp_server.engine import Engine
from lsp_server.pipeline import CompletionRequest, Pipeline, Status
from lsp_server.settings import Settings

pytestmark = pytest.mark.model

DEMO = (Path(__file__).resolve().parents[2] / "examples" / "demo.py").read_text()
SETTINGS = Settings(time_budget_inline_ms=60_000, time_budget_block_ms=60_000)
"""No time budget in play: on a busy machine it would cut the two runs at different tokens."""


@pytest.fixture(scope="module")
def floor(engine: Engine) -> Iterator[FloorGenerator]:
    floor = FloorGenerator(engine.config)  # the same file, context size, threads and batch
    yield floor
    floor.close()


def at(marker: str, typed: str = "") -> CompletionRequest:
    text = DEMO.replace(marker, marker + typed, 1)
    return CompletionRequest(text, text.index(marker) + len(marker) + len(typed), "python", "/demo.py")


@pytest.mark.parametrize(
    ("marker", "typed"),
    [("    sy = ", ""), ("    sy = ", "su"), ("    dy = ", ""), ("    return (dx", "")],
)
def test_the_floor_generates_what_the_server_engine_generates(
    engine: Engine, floor: FloorGenerator, marker: str, typed: str
) -> None:
    request = at(marker, typed)
    served = Pipeline(engine).complete(request, SETTINGS)
    direct = Pipeline(floor).complete(request, SETTINGS)
    assert served.generation is not None and direct.generation is not None
    assert direct.generation.token_ids == served.generation.token_ids
    assert direct.text == served.text
    assert direct.generation.prompt_tokens == served.generation.prompt_tokens
    assert (
        direct.generation.prompt_ms > 0 and direct.generation.finish_reason == served.generation.finish_reason
    )


def test_priming_leaves_the_cache_one_keystroke_behind(floor: FloorGenerator) -> None:
    pipeline = Pipeline(floor)
    floor.priming = True
    primed = pipeline.complete(at("    sy = ", "su"), SETTINGS)
    floor.priming = False
    assert primed.status is Status.CANCELLED and primed.text == ""  # evaluated, nothing generated
    after = pipeline.complete(at("    sy = ", "sum"), SETTINGS).generation
    assert after is not None
    assert after.prompt_tokens - after.reused_tokens <= 3, after  # only the new keystroke's tokens
