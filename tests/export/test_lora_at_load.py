"""LoRA layers applied by llama.cpp when the model loads, instead of merged and re-quantized.

The tiny model's quantized file keeps the base's own projection weights and
names `<name>.lora.gguf`; llama.cpp then computes what the merged F32 model
computes, far closer than the same adapter merged into a Q4_K_M file.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from export.gguf_file import read_template
from export.run import LORA, ExportConfig, ExportResult, run_export
from lsp_server.errors import ModelError
from lsp_server.llama_model import LORA_KEY, LlamaModel
from tests.export.conftest import HELDOUT, llama_logits

pytestmark = pytest.mark.slow

TEXT = (
    "<|fim_suffix|>\n    return total<|fim_prefix|>def total(items):\n    count = 0\n    for item in items:\n"
)


@pytest.fixture(scope="module")
def merged(tiny_base: Path, tiny_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return run_export(
        ExportConfig(
            base=tiny_base,
            output=tmp_path_factory.mktemp("merged"),
            adapter=tiny_adapter,
            name="tiny-merged",
            verify=False,
            threads=1,
            lora_at_load=False,
        )
    )


def test_the_quantized_file_keeps_the_base_weights_and_names_its_lora(
    exported: ExportResult, tiny_base: Path
) -> None:
    base, q4 = read_template(tiny_base), read_template(exported.files["Q4_K_M"])
    lora = exported.files[LORA]
    assert lora.name == "tiny-fim.lora.gguf" and lora.parent == exported.files["Q4_K_M"].parent
    assert q4.string(LORA_KEY) == lora.name
    by_name = {t.name: t for t in base.tensors}
    differing = {t.name for t in q4.tensors if not np.array_equal(t.data, by_name[t.name].data)}
    assert differing == {"token_embd.weight"}  # the trained FIM rows: merged, Q8_0 keeps them
    adapter = read_template(lora)
    projections = {t.name for t in base.tensors if t.name.startswith("blk.") and "norm" not in t.name}
    assert {t.name for t in adapter.tensors} == {f"{n}.lora_{ab}" for n in projections for ab in "ab"}
    assert exported.card["lora_at_load"] == {"file": lora.name, "quants": ["Q4_K_M"]}
    assert f"ADAPTER ./{lora.name}" in (lora.parent / "Modelfile").read_text()


def test_a_file_of_other_types_gets_the_lora_merged(exported: ExportResult) -> None:
    """Q8_0 cannot keep the Q4_K_M base's bytes: its weights are the merged ones, no LoRA named."""
    assert LORA_KEY not in read_template(exported.files["Q8_0"]).metadata


def test_llama_cpp_applies_it_and_computes_what_the_merged_f32_model_computes(
    exported: ExportResult, merged: ExportResult, tiny_base: Path
) -> None:
    model = LlamaModel(exported.files["Q4_K_M"], n_ctx=64, n_threads=1, n_batch=8)
    try:
        assert model.lora == exported.files[LORA]
        tokens = [model.bos_id, *model.tokenize(TEXT, special=True)]
    finally:
        model.close()
    assert LORA not in merged.files and LORA_KEY not in read_template(merged.files["Q4_K_M"]).metadata

    reference = llama_logits(exported.files["F32"], tokens)
    at_load = np.abs(llama_logits(exported.files["Q4_K_M"], tokens) - reference).mean()
    merged_q4 = np.abs(llama_logits(merged.files["Q4_K_M"], tokens) - reference).mean()
    without = np.abs(llama_logits(tiny_base, tokens) - reference).mean()  # the adapter's own effect
    assert at_load < merged_q4 / 2 and at_load < without / 4, (at_load, merged_q4, without)


def test_a_model_without_its_lora_file_is_a_clear_error(exported: ExportResult, tmp_path: Path) -> None:
    alone = tmp_path / exported.files["Q4_K_M"].name
    shutil.copy(exported.files["Q4_K_M"], alone)
    with pytest.raises(ModelError, match=r"needs its adapter 'tiny-fim\.lora\.gguf' next to it"):
        LlamaModel(alone, n_ctx=64, n_threads=1, n_batch=8)
    (tmp_path / "tiny-fim.lora.gguf").write_bytes(b"GGUF but not really")
    with pytest.raises(ModelError, match="could not load the adapter"):
        LlamaModel(alone, n_ctx=64, n_threads=1, n_batch=8)


def test_no_importance_matrix_is_measured_when_every_file_keeps_the_base_weights(
    tiny_base: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    """It would steer nothing (the blocks are the base's bytes); merged, the same export measures one."""
    config = ExportConfig(
        base=tiny_base,
        output=tmp_path / "at-load",
        adapter=tiny_adapter,
        name="tiny",
        verify=False,
        threads=1,
        calibration=HELDOUT,
        calibration_prompts=2,
    )
    at_load = run_export(config)
    assert at_load.card["imatrix"] is None and "imatrix" not in at_load.seconds and LORA in at_load.files
    merged = run_export(replace(config, output=tmp_path / "merged", lora_at_load=False))
    assert merged.card["imatrix"]["source"] == "measured"
