"""Test-wide setup: servers started by tests keep their acceptance counts out of the user's state."""

from __future__ import annotations

import os
import tempfile

# Set at import time so that every server subprocess inherits it.
os.environ["INKLING_STATE"] = tempfile.mkdtemp(prefix="inkling-test-state-")

# Servers started by tests load the base model, even where `inkling model build`
# has put the tuned default in the user's cache: the tests' expectations (prompt
# format, completions) are the base model's. Tests of the tuned default's
# discovery unset this themselves.
if "INKLING_MODEL" not in os.environ:
    from lsp_server.models import ensure_base_model

    os.environ["INKLING_MODEL"] = str(ensure_base_model())
