"""The tokenization memo on the real model's vocabulary: the same tokens as llama.cpp's, while typing."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from lsp_server.llama_model import LlamaModel
from lsp_server.models import resolve_model


def test_cached_tokens_are_llama_cpps_own_at_every_keystroke() -> None:
    model = LlamaModel(resolve_model().path, n_ctx=512, n_threads=1, n_batch=64, vocab_only=True)
    assert model._token_cache.split  # Gemma's vocabulary never merges across a non-blank line start
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    checked = 0
    for name in ("textwrap.py", "csv.py", "dataclasses.py", "enum.py", "gettext.py"):
        text = (stdlib / name).read_text(encoding="utf-8")
        for end in range(2000, min(len(text), 40000), 397):
            # The prompt builder's windows while typing: a few keystrokes at each place.
            for typed in (0, 1, 2, 5):
                window = text[max(0, end - 4000) : end + typed]
                assert model.tokenize(window) == model._tokenize(window, False, False), (name, end, typed)
                checked += 1
    assert checked > 1000 and model._token_cache.hits > 0
