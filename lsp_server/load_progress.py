"""`$/progress` for a model load: begun when the load starts, reported in steps of 10%,
ended with what became of it. Nothing is sent to a client that does not support it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from lsprotocol import types
from pygls.progress import Progress
from pygls.protocol import LanguageServerProtocol


class ProgressHost(Protocol):
    """What a load's progress needs of the server (`server.InklingServer` is one)."""

    @property
    def client_capabilities(self) -> types.ClientCapabilities: ...

    @property
    def work_done_progress(self) -> Progress: ...

    @property
    def protocol(self) -> LanguageServerProtocol: ...

    event_loop: asyncio.AbstractEventLoop | None

    def in_loop(self, fn: Callable[..., Any], *args: Any) -> None: ...


class LoadProgress:
    """`$/progress` for one model load, in steps of 10%, when the client supports it."""

    def __init__(self, server: ProgressHost) -> None:
        self.server = server
        self.token: str | None = None
        self._last = -1
        capabilities = server.client_capabilities.window
        if capabilities is None or not capabilities.work_done_progress:
            return
        token = self.token = f"inkling-load-{uuid.uuid4().hex[:8]}"
        begin = types.WorkDoneProgressBegin(
            title="Inkling", message="loading the model", percentage=0, cancellable=False
        )
        server.work_done_progress.create(token, lambda *_: server.work_done_progress.begin(token, begin))

    def report(self, value: float) -> None:
        """From the loading thread."""
        percent = int(value * 100)
        if self.token is not None and percent >= self._last + 10:
            self._last = percent
            self.server.in_loop(self._send, percent)

    def _send(self, percent: int) -> None:
        progress = self.server.work_done_progress
        if self.token in progress.tokens:
            message = types.WorkDoneProgressReport(message="loading the model", percentage=percent)
            progress.report(self.token, message)

    def end(self, message: str) -> None:
        token, server = self.token, self.server
        if token is None or server.protocol._shutdown:
            return
        progress = server.work_done_progress
        if token in progress.tokens:
            progress.end(token, types.WorkDoneProgressEnd(message=message))
            progress.tokens.pop(token, None)
        elif server.event_loop is not None:  # the client has not answered the create request yet
            server.event_loop.call_later(0.2, lambda: self.end(message))
