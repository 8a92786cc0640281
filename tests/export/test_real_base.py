"""Export on the real Gemma 3 270M: its 262k-token vocabulary and full metadata.

About a minute on an idle 2-core machine (the base GGUF is parsed by gguf-py
twice, 1 GB of F32 is written and quantized); the full verification run with
figures is a documented command (export/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.fim_vocab import fim_edits
from export.gguf_file import TemplateModel, read_template, write_gguf
from export.run import ExportConfig, run_export
from export.verify import greedy
from lsp_server.llama_model import LlamaModel
from lsp_server.models import ensure_base_model
from lsp_server.templates import INKLING_FIM_TOKENS, detect_template

pytestmark = [pytest.mark.model, pytest.mark.slow]

CODE = "import os\n\n\ndef read_lines(path):\n    with open(path) as handle:\n        return"


@pytest.fixture(scope="module")
def base() -> TemplateModel:
    return read_template(ensure_base_model())


def test_round_trip_of_the_real_base_is_the_base(base: TemplateModel, tmp_path: Path) -> None:
    result = run_export(ExportConfig(base=base.path, output=tmp_path, name="rt", verify=False, threads=2))
    exported = read_template(result.files["Q4_K_M"])
    for ours, theirs in zip(exported.tensors, base.tensors, strict=True):
        assert ours.name == theirs.name and ours.tensor_type == theirs.tensor_type
        assert np.array_equal(ours.data, theirs.data), ours.name
    assert result.files["Q4_K_M"].stat().st_size <= base.path.stat().st_size + 1024
    outputs = []
    for path in (base.path, result.files["Q4_K_M"]):
        model = LlamaModel(path, n_ctx=512, n_threads=2, n_batch=64)
        try:
            outputs.append(greedy(model, model.tokenize(CODE, add_bos=True), 16))
        finally:
            model.close()
    assert outputs[0] == outputs[1] and len(outputs[0]) > 1


def test_fim_tokens_on_the_real_vocabulary(base: TemplateModel, tmp_path: Path) -> None:
    """A metadata-only rewrite: the FIM slots are declared, nothing else about tokenization moves."""
    out = write_gguf(
        base, tmp_path / "fim.gguf", None, fim_edits(base, dict(enumerate(INKLING_FIM_TOKENS, 6)), "spm")
    )
    models = [LlamaModel(p, n_ctx=256, n_threads=1, n_batch=8, vocab_only=True) for p in (base.path, out)]
    try:
        original, renamed = models
        assert renamed.fim_token_ids() == {"pre": 6, "suf": 7, "mid": 8, "sep": 9}
        assert (detect_template(original).family, detect_template(renamed).family) == (
            "prefix-only",
            "inkling",
        )
        assert renamed.tokenize("<|fim_prefix|>x<|fim_middle|>", special=True)[::2] == [6, 8]
        for text in (CODE, "    \t  spaces\n\n", "<|fim_prefix|> typed by a user", "ünïcödé ✓"):
            assert renamed.tokenize(text) == original.tokenize(text)
    finally:
        for model in models:
            model.close()
