"""Test-wide setup: servers started by tests keep their acceptance counts out of the user's state."""

from __future__ import annotations

import os
import tempfile

# Set at import time so that every server subprocess inherits it.
os.environ["INKLING_STATE"] = tempfile.mkdtemp(prefix="inkling-test-state-")
