from __future__ import annotations

import inspect
import io
import json
import logging

import pygls.protocol.json_rpc
import pygls.protocol.language_server

from lsp_server.log_privacy import BODY_ARGUMENTS, BufferRedaction

SECRET = "def launch_codes(): return 'swordfish'"


def _logged(allowed: bool, name: str, template: str, *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(BufferRedaction(lambda: allowed))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)  # setLevel, not .level: it clears the logger's cache
    try:
        logger.info(template, *args)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return stream.getvalue()


def test_pygls_message_bodies_are_hidden_unless_log_buffers() -> None:
    body = json.dumps({"result": {"items": [{"insertText": SECRET}]}})
    hidden = _logged(False, "pygls.protocol.json_rpc", "Sending data: %s", body)
    assert SECRET not in hidden and f"<{len(body)} characters hidden" in hidden
    assert SECRET in _logged(True, "pygls.protocol.json_rpc", "Sending data: %s", body)


def test_failed_notification_params_are_hidden_but_the_method_is_kept() -> None:
    template = "Failed to handle notification %r: %s"
    line = _logged(False, "pygls.protocol.json_rpc", template, "textDocument/didOpen", SECRET)
    assert "textDocument/didOpen" in line and SECRET not in line


def test_other_records_pass_untouched() -> None:
    # Inkling's own modules guard buffer text with logBuffers themselves.
    assert SECRET in _logged(False, "lsp_server.pipeline", "prompt: %s", SECRET)
    assert "Request 'x' received" in _logged(False, "pygls.protocol.json_rpc", "Request %r received", "x")


def test_every_template_still_exists_in_pygls() -> None:
    """If a pygls upgrade rewords a template, its bodies would leak again: fail here first."""
    source = inspect.getsource(pygls.protocol.json_rpc) + inspect.getsource(pygls.protocol.language_server)
    for template in BODY_ARGUMENTS:
        assert template in source, template
