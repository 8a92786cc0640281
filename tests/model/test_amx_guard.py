"""Builds of llama.cpp with AMX kernels load weights without them (they crash some machines)."""

from __future__ import annotations

import pytest

from lsp_server import llama_model
from lsp_server.llama_model import LlamaModel, model_params
from lsp_server.models import resolve_model

AMX_LINE = b"CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | REPACK = 1 | "
PLAIN_LINE = b"CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | LLAMAFILE = 1 | REPACK = 1 | "


@pytest.mark.parametrize(("system", "extra_buffers"), [(AMX_LINE, False), (PLAIN_LINE, True)])
def test_extra_buffers_are_off_only_where_the_build_has_amx(
    monkeypatch: pytest.MonkeyPatch, system: bytes, extra_buffers: bool
) -> None:
    monkeypatch.setattr(llama_model.llama_cpp, "llama_print_system_info", lambda: system)
    assert model_params().use_extra_bufts is extra_buffers
    assert model_params(vocab_only=True).use_extra_bufts is True  # no weights, nothing to place


def test_the_real_model_decodes_on_this_build() -> None:
    """On an AMX machine this decode is where the process used to die (a segfault in
    ggml_backend_amx_mul_mat); elsewhere it checks that the guard changed nothing."""
    model = LlamaModel(resolve_model().path, n_ctx=512, n_threads=2, n_batch=64)
    try:
        tokens = model.tokenize("def add(a, b):\n    return a + b\n" * 4, add_bos=True)[:64]
        model.decode(tokens, 0)
        assert model.last_logits().shape == (model.n_vocab,)
    finally:
        model.close()
