"""The engine on the real default model: KV reuse, cancellation, stops."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from lsp_server.engine import Engine
from lsp_server.generator import CancelToken
from lsp_server.generator import GenerationRequest as Request

pytestmark = pytest.mark.model

SOURCE = "import os\n\n\ndef list_python_files(root):\n    result = []\n    for name in os.listdir(root):\n"


def prompt(engine: Engine, text: str) -> list[int]:
    return engine.model.tokenize(text, add_bos=True)


def GenerationRequest(prompt: list[int], max_tokens: int, **options: Any) -> Request:  # noqa: N802
    """A request whose time budget never cuts it short, however busy the machine is."""
    options.setdefault("time_budget_s", 600.0)
    return Request(prompt, max_tokens, **options)


def test_kv_cache_is_reused_across_keystrokes(engine: Engine) -> None:
    first = engine.submit(GenerationRequest(prompt(engine, SOURCE), max_tokens=4)).result()
    typed = engine.submit(GenerationRequest(prompt(engine, SOURCE + "        if"), max_tokens=4)).result()
    assert first.prompt_tokens >= 30
    # Only the typed tokens (and the last prompt token) are evaluated again.
    assert typed.evaluated_tokens <= 4, typed
    assert typed.reused_tokens >= first.prompt_tokens - 1


def test_a_repeated_prompt_is_not_evaluated_again_and_answers_the_same(engine: Engine) -> None:
    # While a word is typed, token healing takes it off the prompt: the prompt repeats.
    first = engine.submit(GenerationRequest(prompt(engine, SOURCE), max_tokens=6)).result()
    repeat = engine.submit(GenerationRequest(prompt(engine, SOURCE), max_tokens=6)).result()
    assert first.generated_tokens == 6
    assert repeat.evaluated_tokens == 0, repeat
    assert (repeat.text, repeat.token_ids) == (first.text, first.token_ids)
    # Another prompt in between: the kept logits are for that one, and the first is
    # evaluated again (its last token) with the same answer.
    engine.submit(GenerationRequest(prompt(engine, SOURCE + "        x = 1\n"), max_tokens=3)).result()
    again = engine.submit(GenerationRequest(prompt(engine, SOURCE), max_tokens=6)).result()
    assert again.evaluated_tokens >= 1, again
    assert again.token_ids == first.token_ids


def test_cancel_stops_within_one_token(engine: Engine) -> None:
    token = CancelToken()
    seen: list[int] = []

    def stop(text: str) -> int | None:
        seen.append(len(text))
        if len(seen) == 3:
            token.cancel("test")
        return None

    result = engine.submit(
        GenerationRequest(prompt(engine, SOURCE), max_tokens=64, stop=stop), token
    ).result()
    assert result.finish_reason == "cancelled"
    assert result.generated_tokens == 3


def test_latest_request_supersedes_the_running_one(engine: Engine) -> None:
    started = threading.Event()

    def slow_stop(text: str) -> int | None:
        started.set()
        return None

    first = engine.submit(GenerationRequest(prompt(engine, SOURCE), max_tokens=200, stop=slow_stop))
    started.wait(timeout=30)
    second = engine.submit(GenerationRequest(prompt(engine, SOURCE + "        "), max_tokens=3))
    assert first.result().finish_reason == "cancelled"
    assert first.result().generated_tokens < 200
    assert second.result().finish_reason in ("length", "eos")


def test_stop_callback_cuts_the_text(engine: Engine) -> None:
    result = engine.submit(
        GenerationRequest(
            prompt(engine, SOURCE),
            max_tokens=64,
            stop=lambda text: text.index("\n") if "\n" in text else None,
        )
    ).result()
    assert result.finish_reason in ("stop", "eos")
    assert "\n" not in result.text


def test_time_budget_returns_what_was_generated(engine: Engine) -> None:
    result = engine.submit(
        GenerationRequest(prompt(engine, SOURCE), max_tokens=500, time_budget_s=0.05)
    ).result()
    assert result.finish_reason in ("budget", "eos")
    assert result.generated_tokens < 50


def test_cancelled_before_start_costs_nothing(engine: Engine) -> None:
    token = CancelToken()
    token.cancel()
    result = engine.submit(GenerationRequest(prompt(engine, SOURCE + "x"), max_tokens=8), token).result()
    assert result.finish_reason == "cancelled" and result.generated_tokens == 0


def test_forced_prefix_is_regenerated_consistently(engine: Engine) -> None:
    text = "def total(values):\n    return"
    # The prompt stops before " su"; the completion must start with it.
    result = engine.submit(
        GenerationRequest(prompt(engine, text), max_tokens=6, forced_prefix=" su")
    ).result()
    assert result.text.startswith(" su"), result.text


def test_moved_window_reuses_shifted_cache(engine: Engine) -> None:
    lines = "".join(f"    total_{i} = compute(values[{i}], scale={i})\n" for i in range(60))
    full = prompt(engine, "def build(values):\n" + lines)
    engine.submit(GenerationRequest(full, max_tokens=1)).result()
    # The window starts 10 lines further down, and the user typed two more lines.
    moved_text = "".join(f"    total_{i} = compute(values[{i}], scale={i})\n" for i in range(10, 62))
    moved = engine.submit(GenerationRequest(prompt(engine, moved_text), max_tokens=4)).result()
    assert moved.reused_tokens > 0.7 * moved.prompt_tokens, moved
    assert moved.text.strip(), moved  # the model still writes sensible code after the shift


def _long_prompt(engine: Engine, salt: str) -> list[int]:
    body = "".join(f"    row_{i} = table.lookup({salt!r}, key={i}, default=None)\n" for i in range(60))
    return prompt(engine, f"def load_{salt}(table):\n" + body)


def _wait_for_batch(engine: Engine) -> int:
    """The end of the first prompt batch llama.cpp is seen evaluating."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine._lock:
            if engine._in_flight is not None:
                return engine._in_flight[1]
    pytest.fail("no prompt batch was seen in flight")


def _cancel_during_a_batch(engine: Engine, token: CancelToken) -> int:
    """Cancel softly while a batch is in flight; returns that batch's end. Under the
    engine's lock no batch starts unseen: the one on record is the one that finishes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine._lock:
            if engine._in_flight is not None:
                token.cancel("typed on", finish_batch=True)
                return engine._in_flight[1]
    pytest.fail("no prompt batch was seen in flight")


def test_a_soft_cancel_finishes_the_batch_in_flight_and_the_next_request_keeps_it(engine: Engine) -> None:
    tokens = _long_prompt(engine, "soft")
    assert len(tokens) > 4 * engine.model.n_batch
    token = CancelToken()
    first = engine.submit(GenerationRequest(tokens, max_tokens=4), token)
    end = _cancel_during_a_batch(engine, token)
    assert first.result().finish_reason == "cancelled"
    # The batch llama.cpp was on when the user typed on is in the cache, whole.
    assert engine._cached == tokens[:end]
    typed = engine.submit(GenerationRequest([*tokens, *prompt(engine, "x")[1:]], max_tokens=2)).result()
    assert typed.reused_tokens >= end


def test_generate_returns_at_a_soft_cancel_without_waiting_for_the_engine(engine: Engine) -> None:
    tokens = _long_prompt(engine, "wait")
    token = CancelToken()
    answers: list[Any] = []
    waiter = threading.Thread(
        target=lambda: answers.append(engine.generate(GenerationRequest(tokens, max_tokens=4), token))
    )
    waiter.start()
    _wait_for_batch(engine)
    token.cancel("typed on", finish_batch=True)
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert answers[0].finish_reason == "cancelled" and answers[0].text == ""
    engine.submit(GenerationRequest(tokens[:8], max_tokens=1)).result()  # the engine carries on
