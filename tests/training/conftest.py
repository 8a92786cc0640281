from __future__ import annotations

from pathlib import Path

import pytest

# The training stack is an extra (`pip install -e '.[train]'`); CI installs it.
pytest.importorskip("trl", reason="needs the train extra: pip install -e '.[train]'")

from tests.training.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Gemma-3-shaped model and a tokenizer trained offline, built once."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))
