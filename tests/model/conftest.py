from __future__ import annotations

from collections.abc import Iterator

import pytest

from lsp_server.engine import Engine, EngineConfig
from lsp_server.models import resolve_model


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The real default model, loaded once for the session."""
    engine = Engine(EngineConfig(resolve_model().path, n_ctx=2048, n_threads=2, n_batch=64))
    engine.load().result()
    yield engine
    engine.close()
