"""Adapter tensors in every dtype peft may save, bfloat16 included (numpy has none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.lora import load_tensors
from tests.requirements import require_train_extra


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_adapter_tensors_load_as_float32(tmp_path: Path, dtype: str) -> None:
    require_train_extra()
    import torch
    from safetensors.torch import save_file

    values = torch.tensor([[1.5, -2.25, 0.1], [3.0, 1e-3, -7.5]])
    save_file({"x.lora_A.weight": values.to(getattr(torch, dtype))}, str(tmp_path / "a.safetensors"))
    loaded = load_tensors(tmp_path / "a.safetensors")["x.lora_A.weight"]
    assert loaded.dtype == np.float32 and loaded.shape == (2, 3)
    np.testing.assert_array_equal(loaded, values.to(getattr(torch, dtype)).float().numpy())
