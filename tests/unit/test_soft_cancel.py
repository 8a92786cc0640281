"""Soft and hard cancels: which ones stop the prompt batch llama.cpp is evaluating."""

from __future__ import annotations

import threading
from pathlib import Path

from lsp_server.engine import Engine, EngineConfig
from lsp_server.generator import CancelToken


def _token_and_abort_flag() -> tuple[CancelToken, threading.Event, threading.Event]:
    token, abort, any_cancel = CancelToken(), threading.Event(), threading.Event()
    token.link(abort)
    token.link(any_cancel, soft=True)
    return token, abort, any_cancel


def test_a_soft_cancel_leaves_the_abort_flag_alone_until_it_is_hardened() -> None:
    token, abort, any_cancel = _token_and_abort_flag()
    token.cancel("superseded", finish_batch=True)
    assert token.cancelled and token.reason == "superseded"
    assert any_cancel.is_set() and not abort.is_set()
    token.abort_batch()
    assert abort.is_set()


def test_a_plain_cancel_is_hard_and_a_late_link_sees_it() -> None:
    token, abort, _ = _token_and_abort_flag()
    token.cancel("shutdown")
    assert abort.is_set()
    late = threading.Event()
    token.link(late)
    assert late.is_set()
    soft_token = CancelToken()
    soft_token.cancel("superseded", finish_batch=True)
    late_soft, late_hard = threading.Event(), threading.Event()
    soft_token.link(late_soft, soft=True)
    soft_token.link(late_hard)
    assert late_soft.is_set() and not late_hard.is_set()


def _engine_evaluating(prompt: list[int], batch_end: int) -> tuple[Engine, threading.Event]:
    engine = Engine(EngineConfig(Path("never-loaded.gguf")))
    token, abort, _ = _token_and_abort_flag()
    engine._current = token
    engine._in_flight = (prompt, batch_end)
    return engine, abort


def test_a_new_prompt_that_shares_the_batch_in_flight_lets_it_finish() -> None:
    engine, abort = _engine_evaluating(list(range(100)), 64)
    engine._supersede([*range(90), 7, 7])  # typed near the end: the first 64 tokens are the same
    assert engine._current is not None and engine._current.cancelled
    assert not abort.is_set()


def test_a_new_prompt_that_differs_inside_the_batch_aborts_it() -> None:
    engine, abort = _engine_evaluating(list(range(100)), 64)
    engine._supersede([*range(40), 7, *range(41, 100)])  # a jump or an edit above: the batch is waste
    assert abort.is_set()


def test_a_new_prompt_that_ends_inside_the_batch_aborts_it() -> None:
    engine, abort = _engine_evaluating(list(range(100)), 64)
    engine._supersede(list(range(50)))
    assert abort.is_set()


def test_a_request_in_generation_is_cancelled_per_token_not_aborted() -> None:
    engine, abort = _engine_evaluating(list(range(100)), 64)
    engine._in_flight = None  # the prompt is done: generation checks the token between tokens
    engine._supersede([1, 2, 3])
    assert engine._current is not None and engine._current.cancelled and not abort.is_set()
