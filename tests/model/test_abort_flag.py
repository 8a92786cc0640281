"""llama.cpp's abort callback, polled without the GIL, really stops a decode."""

from __future__ import annotations

import threading
import time

import pytest

from lsp_server import llama_model
from lsp_server.errors import RequestCancelledError
from lsp_server.llama_model import LlamaModel
from lsp_server.models import resolve_model

TEXT = (
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n" * 8
)


@pytest.fixture(scope="module")
def model() -> LlamaModel:
    return LlamaModel(resolve_model().path, n_ctx=1024, n_threads=2, n_batch=128)


def test_the_flag_is_read_by_libc_not_python() -> None:
    assert llama_model._STRLEN is not None  # glibc here; elsewhere the Python fallback is used


def test_a_set_flag_aborts_the_decode_and_a_cleared_one_lets_it_run(model: LlamaModel) -> None:
    tokens = model.tokenize(TEXT, add_bos=True)[:128]
    model.kv_clear()
    model.abort_flag.set()
    assert model.abort_flag.is_set()
    with pytest.raises(RequestCancelledError):
        model.decode(tokens, 0)
    model.abort_flag.clear()
    model.kv_clear()
    model.decode(tokens, 0)  # no error: the same batch runs once the flag is clear
    assert model.last_logits().shape == (model.n_vocab,)


def test_setting_the_flag_from_another_thread_stops_a_running_batch(model: LlamaModel) -> None:
    tokens = model.tokenize(TEXT, add_bos=True)[:128]
    model.abort_flag.clear()
    model.kv_clear()
    started = time.perf_counter()
    model.decode(tokens, 0)
    whole = time.perf_counter() - started

    model.kv_clear()
    timer = threading.Timer(whole / 10, model.abort_flag.set)  # a tenth of the way in
    timer.start()
    try:
        with pytest.raises(RequestCancelledError):
            model.decode(tokens, 0)
    finally:
        timer.cancel()
        model.abort_flag.clear()
