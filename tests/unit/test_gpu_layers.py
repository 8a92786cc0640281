"""gpuLayers reaches llama.cpp's model parameters; 0 (the default) even where llama.cpp's own
default would offload every layer of a GPU build."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.llama_model import build_features, model_params
from lsp_server.loading import engine_config
from lsp_server.settings import Settings, layer_from_cli, layer_from_env, merge


def test_the_setting_comes_from_flags_and_environment_and_reaches_the_engine(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(20))
    assert Settings().gpu_layers == 0
    settings = merge([layer_from_env({"INKLING_GPU_LAYERS": "7"}), layer_from_cli({"gpu_layers": "12"})])
    assert settings.gpu_layers == 12
    config, _ = engine_config(Settings(model_path=str(model), gpu_layers=12))
    assert config.n_gpu_layers == 12
    assert "below the minimum" in layer_from_env({"INKLING_GPU_LAYERS": "-1"}).warnings[0]


@pytest.mark.parametrize("layers", [0, 18])
def test_model_params_carry_it(layers: int) -> None:
    assert model_params(n_gpu_layers=layers).n_gpu_layers == layers


def test_the_build_reports_its_cpu_features() -> None:
    features, gpu_offload = build_features()
    assert "SSE3" in features and all("=" not in name and " " not in name for name in features)
    assert isinstance(gpu_offload, bool)
