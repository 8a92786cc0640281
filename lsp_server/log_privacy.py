"""Keep buffer text out of the logs unless the user turns `logBuffers` on.

Inkling's own modules log prompts and completions only when `logBuffers` is
set. pygls, though, logs whole protocol messages at INFO and DEBUG (every
response body, so every completion) and the params of a request or
notification whose handler failed (so a didOpen's text). This filter sits on
the log handlers and hides those arguments while `logBuffers` is off, so that
`--log-level DEBUG` still shows the traffic (methods, ids, timings) without
the code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

# pygls' log templates whose arguments carry message bodies, and which arguments do.
BODY_ARGUMENTS: dict[str, tuple[int, ...]] = {
    "Sending data: %s": (0,),
    "Sending notification: '%s' %s": (1,),
    'Sending request with id "%s": %s %s': (2,),
    'Received result for message "%s": %s': (1,),
    "Client response for %s received: %s": (0, 1),
    "Failed to handle notification %r: %s": (1,),
    "Failed to handle request %s %s %s": (2,),
    'Unknown message "%s"': (0,),
}


class BufferRedaction(logging.Filter):
    """Replaces message bodies in pygls' log records unless `allowed()` says otherwise."""

    def __init__(self, allowed: Callable[[], bool]) -> None:
        super().__init__()
        self.allowed = allowed

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("pygls") or not isinstance(record.args, tuple):
            return True
        hidden = BODY_ARGUMENTS.get(record.msg) if isinstance(record.msg, str) else None
        if hidden and not self.allowed():
            record.args = tuple(_hide(arg) if i in hidden else arg for i, arg in enumerate(record.args))
        return True


def _hide(value: Any) -> str:
    size = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
    return f"<{size} hidden; set logBuffers to log message bodies>"


def redact_buffers_in_logs(allowed: Callable[[], bool]) -> BufferRedaction:
    """Put the filter on every handler of the root logger (call after logging is set up)."""
    redaction = BufferRedaction(allowed)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redaction)
    return redaction
