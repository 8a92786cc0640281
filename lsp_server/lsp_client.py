"""A small LSP client that drives `inkling serve` over stdio.

Used by the instruments (`inkling eval --lsp`, `inkling bench`) so that they
measure the real server process: its protocol handling, its threads, its
cancellation. Tests use pytest-lsp instead.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from lsp_server import __version__

SERVE_COMMAND = (sys.executable, "-m", "lsp_server", "serve")


class InklingClient:
    """One server process and one session with it."""

    def __init__(
        self,
        command: Sequence[str] = SERVE_COMMAND,
        *,
        env: dict[str, str] | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.command = list(command)
        self.env = env
        self._stderr = stderr
        self._client = LanguageClient("inkling-instrument", __version__)
        self._drain: asyncio.Task[None] | None = None
        self.versions: dict[str, int] = {}
        self.notifications: list[tuple[str, Any]] = []

        @self._client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def _progress_create(params: Any) -> None:
            return None

        @self._client.feature(types.PROGRESS)
        def _progress(params: Any) -> None:
            self.notifications.append((types.PROGRESS, params))

        @self._client.feature("inkling/status")
        def _status(params: Any) -> None:
            self.notifications.append(("inkling/status", params))

        @self._client.feature(types.WINDOW_SHOW_MESSAGE)
        def _message(params: Any) -> None:
            self.notifications.append((types.WINDOW_SHOW_MESSAGE, params))

    @property
    def pid(self) -> int:
        process = self._client._server
        if process is None:
            raise RuntimeError("the server is not running")
        return process.pid

    async def start(
        self,
        initialization_options: dict[str, Any] | None = None,
        position_encodings: Sequence[str] = ("utf-16",),
        workspace: Path | None = None,
    ) -> types.InitializeResult:
        await self._client.start_io(*self.command, env=self.env)
        process = self._client._server
        if process is not None and process.stderr is not None:
            self._drain = asyncio.create_task(self._forward_stderr(process.stderr))
        capabilities = types.ClientCapabilities(
            general=types.GeneralClientCapabilities(
                position_encodings=[types.PositionEncodingKind(e) for e in position_encodings]
            ),
            window=types.WindowClientCapabilities(work_done_progress=True),
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities(),
                synchronization=types.TextDocumentSyncClientCapabilities(),
            ),
        )
        result = await self._client.initialize_async(
            types.InitializeParams(
                capabilities=capabilities,
                process_id=None,
                initialization_options=initialization_options,
                root_uri=None if workspace is None else workspace.resolve().as_uri(),
                workspace_folders=None
                if workspace is None
                else [types.WorkspaceFolder(uri=workspace.resolve().as_uri(), name=workspace.name)],
                client_info=types.ClientInfo(name="inkling-instrument", version=__version__),
            )
        )
        self._client.initialized(types.InitializedParams())
        return result

    async def _forward_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            if self._stderr is not None:
                self._stderr.write(line.decode("utf-8", "replace"))

    async def status(self) -> dict[str, Any]:
        result: Any = await self._client.protocol.send_request_async("inkling/status", None)
        plain: dict[str, Any] = _plain(result)
        return plain

    async def document_state(self, uri: str) -> dict[str, Any]:
        """The server's fingerprint of a buffer (version, SHA-256 of its UTF-8 text)."""
        result: Any = await self._client.protocol.send_request_async("inkling/documentState", {"uri": uri})
        return result if isinstance(result, dict) else dict(result._asdict())

    async def wait_ready(self, timeout: float = 300.0) -> dict[str, Any]:
        """Wait until the model has loaded (or failed); raises on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            current = await self.status()
            if current["state"] in ("ready", "failed"):
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"model not ready after {timeout:.0f}s: {current}")
            await asyncio.sleep(0.02)

    def open(self, uri: str, language_id: str, text: str) -> None:
        self.versions[uri] = 1
        self._client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)
            )
        )

    def change(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        """One incremental edit (positions in the negotiated encoding)."""
        self.versions[uri] += 1
        self._client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=start[0], character=start[1]),
                            end=types.Position(line=end[0], character=end[1]),
                        ),
                        text=text,
                    )
                ],
            )
        )

    def close(self, uri: str) -> None:
        self._client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    def request_inline(
        self,
        uri: str,
        line: int,
        character: int,
        *,
        on_answer: Callable[[], None] | None = None,
    ) -> tuple[str, asyncio.Future[Any]]:
        """Send an inline-completion request; returns its id (for cancel) and its future.

        `on_answer` is called as soon as the response (or error) has been read,
        before the event loop gets round to the awaiting task: instruments take
        their timestamp there."""
        msg_id = uuid.uuid4().hex
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
        answer = self._client.protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id
        )
        if on_answer is not None:
            answer.add_done_callback(lambda _: on_answer())
        return msg_id, asyncio.wrap_future(answer)

    def cancel(self, msg_id: str) -> None:
        self._client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))

    async def inline(self, uri: str, line: int, character: int) -> str:
        """The first inline item's text ('' when the server has nothing)."""
        _, future = self.request_inline(uri, line, character)
        result = await future
        items = getattr(result, "items", None) or []
        return str(items[0].insert_text) if items else ""

    async def inline_item(self, uri: str, line: int, character: int) -> tuple[str, types.Command | None]:
        """The first inline item's text and the command the editor runs on accepting it."""
        _, future = self.request_inline(uri, line, character)
        result = await future
        items = getattr(result, "items", None) or []
        if not items:
            return "", None
        return str(items[0].insert_text), items[0].command

    async def execute_command(self, command: types.Command) -> Any:
        """Run an item's command, as an editor does when the user accepts the item."""
        return await self._client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
        )

    async def stop(self) -> int | None:
        """Shut down politely; returns the server's exit code."""
        process = self._client._server
        try:
            await asyncio.wait_for(self._client.shutdown_async(None), timeout=30)
            self._client.exit(None)
            if process is not None:
                await asyncio.wait_for(process.wait(), timeout=30)
        except (TimeoutError, ConnectionError):
            if process is not None and process.returncode is None:
                process.kill()
        await self._client.stop()
        if self._drain is not None:
            self._drain.cancel()
        return process.returncode if process is not None else None


def _plain(value: Any) -> Any:
    """pygls hands back results of custom requests as (nested) namedtuples."""
    if hasattr(value, "_asdict"):
        return {key: _plain(item) for key, item in value._asdict().items()}
    return value


def rss_kib(pid: int) -> tuple[int, int]:
    """Current and peak resident memory of a process, in KiB (Linux /proc)."""
    current = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return current, peak


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
