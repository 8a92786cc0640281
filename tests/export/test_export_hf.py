"""A Hugging Face base goes through llama.cpp's own converter; the same checks as by template."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.hf_convert import ConverterError, find_converter
from export.run import ExportConfig, run_export
from lsp_server.llama_model import LlamaModel
from lsp_server.templates import detect_template
from tests.export.conftest import HELDOUT
from tests.export.tiny_gemma import write_tiny_adapter, write_tiny_hf_gemma
from tests.requirements import require, require_train_extra

pytestmark = pytest.mark.slow
require_train_extra()


def test_hugging_face_base_with_adapter(tmp_path: Path) -> None:
    try:
        converter: Path | None = find_converter()
    except ConverterError:
        converter = None
    require(converter is not None, "llama.cpp's converter", "`.venv/bin/inkling model converter`")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    corpus = "\n".join(
        p.read_text() for p in sorted((Path(__file__).parents[2] / "lsp_server").glob("*.py"))[:8]
    )
    base = write_tiny_hf_gemma(tmp_path / "hf-base", corpus)
    adapter = write_tiny_adapter(base, tmp_path / "adapter", fim_format="psm")
    result = run_export(
        ExportConfig(
            base=base,
            output=tmp_path / "out",
            adapter=adapter,
            name="hf-tiny",
            quants=("Q8_0",),
            heldout=HELDOUT,
            probes=4,
            perplexity_chunks=1,
            threads=1,
            keep_f32=True,
        )
    )
    model = LlamaModel(result.files["F32"], n_ctx=256, n_threads=1, n_batch=64)
    try:
        template = detect_template(model)
        assert (template.family, template.order) == ("inkling", "psm")
        assert model.fim_token_ids() == {"pre": 6, "suf": 7, "mid": 8, "sep": 9}
        tokens = [
            model.bos_id,
            6,
            *model.tokenize("def area(width):\n    return"),
            7,
            *model.tokenize("\n"),
            8,
        ]
        model.decode(tokens, 0, logits_from=0)
        actual = model.batch_logits(len(tokens))
    finally:
        model.close()
    hf = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.no_grad():
        expected = PeftModel.from_pretrained(hf, adapter).eval()(torch.tensor([tokens])).logits[0].numpy()
    assert (actual.argmax(-1) == expected.argmax(-1)).all()
    assert np.abs(actual - expected).mean() < 0.01 * np.abs(expected).mean()
    assert result.report is not None and result.report.candidates[0].token_agreement is not None
