"""`inkling model adopt`: a trained adapter copied as bfloat16, what torch would round it to, and buildable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.adapter import METADATA_FILE
from export.adopt import adopt_adapter
from export.build import build_default_model
from export.imatrix import IMATRIX_FILE, Imatrix, write_imatrix
from export.lora import load_tensors
from tests.requirements import require_train_extra

pytestmark = pytest.mark.slow


def test_adopted_weights_are_torchs_bfloat16_and_half_the_size(tiny_adapter: Path, tmp_path: Path) -> None:
    require_train_extra()
    import torch

    target = tmp_path / "default_adapter"
    (target).mkdir()
    (target / "build.json").write_text("{}")  # a stale record from an older adapter
    sizes = adopt_adapter(tiny_adapter, target)

    original = load_tensors(tiny_adapter / "adapter_model.safetensors")
    adopted = load_tensors(target / "adapter_model.safetensors")
    assert original.keys() == adopted.keys()
    for name, values in original.items():
        expected = torch.from_numpy(values).to(torch.bfloat16).float().numpy()
        assert np.array_equal(adopted[name], expected), name
    assert (
        sizes["adapter_model.safetensors"] < 0.6 * (tiny_adapter / "adapter_model.safetensors").stat().st_size
    )
    assert json.loads((target / METADATA_FILE).read_text()) == json.loads(
        (tiny_adapter / METADATA_FILE).read_text()
    )
    assert not (target / "build.json").exists()


def test_an_adopted_adapter_builds(tiny_base: Path, tiny_adapter: Path, tmp_path: Path) -> None:
    target = tmp_path / "default_adapter"
    adopt_adapter(tiny_adapter, target)
    built = build_default_model(
        adapter_dir=target, base=tiny_base, target_dir=tmp_path / "models", record=True, threads=1
    )
    assert (
        built.path.is_file()
        and json.loads((target / "build.json").read_text())["output_sha256"] == built.sha256
    )


def test_a_directory_without_an_adapter_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"adapter_model\.safetensors"):
        adopt_adapter(tmp_path, tmp_path / "target")


def test_the_importance_matrix_comes_along_and_a_stale_one_goes(
    tiny_adapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lsp_server.cli import main

    target = tmp_path / "default_adapter"
    matrix = tmp_path / "measured.imatrix.gguf"
    write_imatrix(Imatrix({"blk.0.attn_q.weight": np.ones(8)}, {"blk.0.attn_q.weight": 4}), matrix)
    args = ["model", "adopt", str(tiny_adapter), "--to", str(target)]
    assert main([*args, "--imatrix", str(matrix)]) == 0
    assert (target / IMATRIX_FILE).read_bytes() == matrix.read_bytes()
    assert main(args) == 0  # a new adapter without one: the old matrix was measured for another
    assert not (target / IMATRIX_FILE).exists()
    assert main([*args, "--imatrix", str(tiny_adapter / METADATA_FILE)]) == 1
    assert "not a GGUF imatrix" in capsys.readouterr().err
