from __future__ import annotations

from pathlib import Path

import pytest

from tests.requirements import require_train_extra

# The training stack is an extra (`pip install -e '.[dev,train]'`); .ci/run installs it.
require_train_extra()

from tests.training.tiny_model import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Gemma-3-shaped model and a tokenizer trained offline, built once."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model))
