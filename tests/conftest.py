"""Test-wide setup: servers started by tests keep their acceptance counts out of the user's state."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

from export.build import DEFAULT_ADAPTER_DIR, BuildResult, build_default_model, has_adapter

# Set at import time so that every server subprocess inherits it; removed when
# the test run ends (every server it started has stopped by then).
os.environ["INKLING_STATE"] = tempfile.mkdtemp(prefix="inkling-test-state-")
atexit.register(shutil.rmtree, os.environ["INKLING_STATE"], ignore_errors=True)

# Servers started by tests load the base model, even where `inkling model build`
# has put the tuned default in the user's cache: the tests' expectations (prompt
# format, completions) are the base model's. Tests of the tuned default's
# discovery unset this themselves.
if "INKLING_MODEL" not in os.environ:
    from lsp_server.models import ensure_base_model

    os.environ["INKLING_MODEL"] = str(ensure_base_model())


@pytest.fixture(scope="session")
def built_default(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """The tuned default, built from the shipped adapter once per session into a fresh
    cache (`<cache>/models/`), whatever the user's own cache holds."""
    if not has_adapter(DEFAULT_ADAPTER_DIR):
        pytest.fail(f"no adapter shipped in {DEFAULT_ADAPTER_DIR}")
    cache = tmp_path_factory.mktemp("cache")
    return build_default_model(target_dir=cache / "models", threads=2)  # checks the recorded sha256
