"""Export's errors: one base under `InklingError`, so the commands catch one type.

Each step keeps its own subclass (tests and callers that recover, like the
numpy merge falling back to peft's, name the step); `export.cli` and
`export.model_cli` catch `InklingError` once and print the message.
"""

from __future__ import annotations

from lsp_server.errors import InklingError


class ExportError(InklingError):
    """An export, a build or a conversion that cannot go on; the message says what to change."""
