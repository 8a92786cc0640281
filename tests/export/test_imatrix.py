"""The importance matrix: measured on the tiny merged model, written in llama.cpp's
format, read back, and followed by llama.cpp's quantizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.gguf_file import read_template
from export.imatrix import ImatrixError, calibration_texts, compute_imatrix, read_imatrix, write_imatrix
from export.quantize import quantize
from export.run import ExportConfig, ExportResult, run_export
from export.verify import build_probes
from lsp_server.llama_model import LlamaModel
from tests.export.conftest import HELDOUT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibrated(tiny_base: Path, tiny_adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    out = tmp_path_factory.mktemp("calibrated")
    return run_export(
        ExportConfig(
            base=tiny_base,
            output=out,
            adapter=tiny_adapter,
            name="tiny-imatrix",
            verify=False,
            threads=1,
            keep_f32=True,
            calibration=HELDOUT,
            calibration_prompts=4,
            lora_at_load=False,  # merged: the block weights are quantized, so the matrix matters
        )
    )


def _block_weights(path: Path) -> dict[str, int]:
    """Block weight name -> its input width (GGUF's ne[0])."""
    return {
        t.name: int(t.shape[0])
        for t in read_template(path).tensors
        if t.name.startswith("blk.") and t.name.endswith(".weight") and len(t.shape) == 2
    }


def test_the_export_measures_one_entry_per_block_weight(calibrated: ExportResult) -> None:
    f32 = calibrated.files["F32"]
    card = calibrated.card["imatrix"]
    assert card["source"] == "measured" and card["prompts"] == 4
    imatrix = read_imatrix(Path(card["file"]))
    widths = _block_weights(f32)
    assert set(imatrix.sums) == set(widths)
    for name, sums in imatrix.sums.items():
        assert sums.shape == (widths[name],) and np.all(sums > 0), name
    assert len(set(imatrix.counts.values())) == 1  # every layer saw every token
    assert imatrix.datasets == [str(HELDOUT[0])] and imatrix.chunks == 4
    card_text = (f32.parent / "MODEL_CARD.md").read_text()
    assert "with an importance matrix (measured, 4 prompts" in card_text


def test_the_file_round_trips_and_the_counts_are_the_prompt_tokens(
    calibrated: ExportResult, tmp_path: Path
) -> None:
    f32 = calibrated.files["F32"]
    model = LlamaModel(f32, n_ctx=2048, n_threads=1, n_batch=64, vocab_only=True)
    try:
        prompts = build_probes(model, calibration_texts(HELDOUT, 3), 3)
    finally:
        model.close()
    imatrix = compute_imatrix(f32, prompts, ["demo"])
    assert set(imatrix.counts.values()) == {sum(len(p) for p in prompts)}
    write_imatrix(imatrix, tmp_path / "m.gguf")
    again = read_imatrix(tmp_path / "m.gguf")
    assert again.counts == imatrix.counts and again.datasets == ["demo"] and again.chunks == 3
    for name, sums in imatrix.sums.items():
        np.testing.assert_allclose(again.sums[name], sums, rtol=1e-6)


def test_the_quantizer_follows_the_importance_matrix(calibrated: ExportResult, tmp_path: Path) -> None:
    """Same F32 file, with and without the matrix: the block weights round differently,
    everything llama.cpp does not quantize stays bit for bit the same."""
    f32 = calibrated.files["F32"]
    means = read_imatrix(Path(calibrated.card["imatrix"]["file"])).means()
    plain = read_template(quantize(f32, tmp_path / "plain.gguf", "Q4_K_M", threads=1).path)
    weighted = read_template(
        quantize(f32, tmp_path / "weighted.gguf", "Q4_K_M", threads=1, importance=means).path
    )
    changed = set()
    for a, b in zip(plain.tensors, weighted.tensors, strict=True):
        assert a.name == b.name and a.tensor_type == b.tensor_type
        if not np.array_equal(a.data, b.data):
            changed.add(a.name)
    assert changed and changed <= set(means)
    assert len(changed) >= len(means) // 2


def test_a_missing_or_foreign_file_is_a_clear_error(tiny_base: Path, tmp_path: Path) -> None:
    with pytest.raises(ImatrixError, match="not a GGUF imatrix"):
        read_imatrix(tmp_path / "absent.gguf")
    with pytest.raises(ImatrixError, match="holds no importance data"):
        read_imatrix(tiny_base)
    with pytest.raises(ImatrixError, match="does not exist"):
        calibration_texts([tmp_path / "nowhere"], 4)
