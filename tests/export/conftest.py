from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.quantize import quantize
from export.run import ExportConfig, ExportResult, run_export
from lsp_server.llama_model import LlamaModel
from tests.export.tiny_gemma import write_tiny_adapter, write_tiny_gemma
from tests.requirements import require_train_extra

HELDOUT = (Path(__file__).resolve().parents[2] / "examples" / "demo.py",)


def llama_logits(path: Path, tokens: list[int]) -> np.ndarray:
    """llama.cpp's logits at every position of `tokens` (one batch) for the model at `path`."""
    model = LlamaModel(path, n_ctx=256, n_threads=1, n_batch=128)
    try:
        model.decode(tokens, 0, logits_from=0)
        return model.batch_logits(len(tokens))
    finally:
        model.close()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-export")


@pytest.fixture(scope="session")
def tiny_base(tiny_dir: Path) -> Path:
    """Like the real base: a Q4_K_M file quantized from higher precision."""
    f32 = write_tiny_gemma(tiny_dir / "source-f32.gguf")
    return quantize(f32, tiny_dir / "tiny-base-q4_k_m.gguf", "Q4_K_M", threads=1).path


@pytest.fixture(scope="session")
def tiny_adapter(tiny_base: Path, tiny_dir: Path) -> Path:
    """Made with peft: needs the train extra (`pip install -e '.[dev,train]'`, as .ci/run does)."""
    require_train_extra()
    return write_tiny_adapter(tiny_base, tiny_dir / "adapter")


@pytest.fixture(scope="session")
def exported(tiny_base: Path, tiny_adapter: Path, tiny_dir: Path) -> ExportResult:
    return run_export(
        ExportConfig(
            base=tiny_base,
            output=tiny_dir / "out",
            adapter=tiny_adapter,
            name="tiny-fim",
            quants=("Q4_K_M", "Q8_0"),
            heldout=HELDOUT,
            probes=6,
            perplexity_chunks=1,
            threads=1,
            keep_f32=True,
        )
    )
