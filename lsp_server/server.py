"""The only module that speaks LSP: lifecycle, buffers, completion requests.

It converts between protocol types and domain types and turns Inkling's
errors into messages; the work itself is done by the pipeline on worker
threads so that the event loop keeps reading the client's messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Generator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from cattrs import transform_error
from cattrs.errors import ClassValidationError
from cattrs.v import format_exception as cattrs_format_exception
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    RPCError,
    RPCNotification,
    RPCRequest,
    RPCResponse,
)
from pygls.protocol.language_server import lsp_method

from lsp_server import __version__
from lsp_server.acceptance import ACCEPT_COMMAND, AcceptanceLog
from lsp_server.completion_cache import CompletionCache
from lsp_server.context import Mode
from lsp_server.documents import UTF8, UTF16, UTF32, Document, DocumentStore
from lsp_server.early_load import EarlyLoad
from lsp_server.engine import CancelToken, Engine
from lsp_server.errors import (
    CancelledError,
    DocumentError,
    InklingError,
    ModelError,
    ModelNotReadyError,
)
from lsp_server.loading import engine_config
from lsp_server.pipeline import Completion, CompletionRequest, Pipeline
from lsp_server.project_context import ProjectContext
from lsp_server.project_index import ProjectIndex
from lsp_server.scheduler import Scheduler
from lsp_server.settings import (
    Settings,
    SettingsLayer,
    changed_reload_fields,
    layer_from_client,
    merge,
)

log = logging.getLogger(__name__)

_ENCODINGS: dict[str, str] = {
    types.PositionEncodingKind.Utf8.value: UTF8,
    types.PositionEncodingKind.Utf16.value: UTF16,
    types.PositionEncodingKind.Utf32.value: UTF32,
}
_WORD_TAIL = re.compile(r"[\w$]+$")
STATUS_NOTIFICATION = "inkling/status"


@dataclass
class _Malformed:
    """A message that could not be turned into a protocol type, kept to answer it."""

    id: Any
    method: str | None
    reason: str
    uri: str | None = None
    """The document a malformed didChange was about (its edit is lost)."""
    invalid_request: bool = False
    """Not a valid JSON-RPC request at all (rather than a request with bad params)."""
    jsonrpc: str = "2.0"

    @property
    def is_request(self) -> bool:
        return self.id is not _NO_ID and self.method is not None


_NO_ID = object()
_JSONRPC = "2.0"


class InklingProtocol(LanguageServerProtocol):
    """pygls' protocol, hardened: every request gets an answer, a message that is
    not JSON-RPC gets the error JSON-RPC prescribes, and the server keeps its own
    exact copy of each buffer (see `documents.py`)."""

    _server: InklingServer
    _client_gone = False

    def structure_message(self, data: dict[str, Any]) -> Any:
        # json calls this for every object, nested ones too: only messages carry "jsonrpc".
        if "jsonrpc" not in data:
            return data
        method = data.get("method")
        if method is not None and not isinstance(method, str):
            return _Malformed(
                data.get("id", _NO_ID), "?", "the method must be a string", invalid_request=True
            )
        if data["jsonrpc"] != _JSONRPC:
            reason = f'jsonrpc must be "{_JSONRPC}"'
            return _Malformed(data.get("id", _NO_ID), method, reason, invalid_request=True)
        if method is not None and "params" not in data:
            data = {**data, "params": None}  # JSON-RPC lets a message leave params out
        try:
            return self._structure(data)
        except Exception as exc:
            return _Malformed(data.get("id", _NO_ID), method, _describe(exc), _change_uri(method, data))

    def _structure(self, data: dict[str, Any]) -> Any:
        """pygls' own dispatch, without its traceback for every bad message."""
        method = data.get("method")
        if "id" not in data:
            return self._converter.structure(data, self.get_message_type(method or "") or JsonRPCNotification)
        if "error" in data:
            return self._converter.structure(data, types.ResponseErrorMessage)
        if method is not None:
            return self._converter.structure(data, self.get_message_type(method) or JsonRPCRequestMessage)
        result_type = self._result_types.pop(data["id"], None) or JsonRPCResponseMessage
        return self._converter.structure(data, result_type)

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Malformed):
            self._refuse(message)
            return
        if not isinstance(message, _MESSAGE_TYPES):  # an array, a string, an object without "jsonrpc"
            msg_id = message.get("id") if isinstance(message, dict) else None
            log.warning("refused a message that is not a JSON-RPC 2.0 object (%s)", type(message).__name__)
            self._send_error(
                msg_id if isinstance(msg_id, (str, int)) else None,
                JsonRpcInvalidRequest(
                    'not a JSON-RPC 2.0 message (expected an object with "jsonrpc": "2.0")'
                ),
            )
            return
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None)
        if method is not None and msg_id is not None:
            if self._shutdown and method != types.EXIT:
                refused = JsonRpcInvalidRequest(f"the server is shutting down; {method} refused")
                self._send_response(msg_id, None, refused.to_response_error())
                return
            if method != types.INITIALIZE and self._workspace is None:
                early = JsonRpcServerNotInitialized(f"{method} before initialize")
                self._send_response(msg_id, None, early.to_response_error())
                return
        elif method is not None and self._workspace is None and method != types.EXIT:
            log.warning("dropped the notification %s: it came before initialize", method)
            return  # as LSP asks: notifications before initialize are dropped
        super().handle_message(message)

    def _refuse(self, message: _Malformed) -> None:
        name = message.method or "(no method)"
        if message.is_request and message.invalid_request:
            log.warning("invalid request %s: %s", name, message.reason)
            msg_id = message.id if isinstance(message.id, (str, int)) else None
            self._send_error(msg_id, JsonRpcInvalidRequest(f"invalid request {name}: {message.reason}"))
        elif message.is_request:
            log.warning("invalid params for %s: %s", name, message.reason)
            invalid = JsonRpcInvalidParams(f"invalid params for {name}: {message.reason}")
            self._send_response(message.id, None, invalid.to_response_error())
        elif message.method is None and message.id is not _NO_ID:
            self._fail_pending(message)
        else:
            log.warning("ignored a malformed notification %s: %s", name, message.reason)
        if message.uri is not None and self._server.documents.mark_out_of_sync(
            message.uri, f"an edit could not be read ({message.reason})"
        ):
            self._server.tell(
                f"an edit to {message.uri} could not be read ({message.reason}); "
                "no completions for it until it is reopened"
            )

    def _fail_pending(self, message: _Malformed) -> None:
        """A response from the client that does not fit: fail the request that waits for it."""
        log.warning("unusable response to request %s: %s", message.id, message.reason)
        future = self._request_futures.pop(message.id, None)
        if future is not None and not future.done():
            future.set_exception(JsonRpcInvalidParams(f"unusable response: {message.reason}"))

    def _send_error(self, msg_id: str | int | None, error: JsonRpcException) -> None:
        """An error response, with `"id": null` when the id could not be read (as JSON-RPC asks)."""
        self._send_data(
            {"jsonrpc": _JSONRPC, "id": msg_id, "error": {"code": error.code, "message": error.message}}
        )

    def parse_error(self, error: Exception) -> None:
        """The body was not JSON (or not UTF-8): answer with ParseError, id null."""
        log.warning("refused a message that is not valid JSON: %s", _first_line(error))
        self._send_error(None, JsonRpcParseError(f"not valid JSON: {_first_line(error)}"))

    def _send_data(self, data: Any) -> None:
        if self._client_gone:
            return
        try:
            super()._send_data(data)
        except _CLIENT_GONE:
            # The client closed its end: say so once, stop working for it, stay quiet.
            self._client_gone = True
            log.warning("the client closed the connection; cancelling work")
            self._server.scheduler.cancel_all("the client is gone")

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Any,
        callback: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        # pygls files every handler's future under an id but drops only those of
        # requests: without this, every notification (every keystroke) leaks one.
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(partial(self._forget, msg_id))

    def _forget(self, msg_id: Any, future: Any) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Generator[Any, Any, types.InitializeResult]:
        # Prefer UTF-8 positions whenever the client offers them: tree-sitter
        # counts bytes, and no conversion is cheaper than a cheap one.
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            offered = list(general.position_encodings)
            if types.PositionEncodingKind.Utf8 in offered:
                offered.remove(types.PositionEncodingKind.Utf8)
                general.position_encodings = [types.PositionEncodingKind.Utf8, *offered]
        return (yield from super().lsp_initialize(params))

    # The server keeps buffers in `DocumentStore`; pygls' copies are not kept.
    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(
        self, params: types.DidOpenTextDocumentParams
    ) -> Generator[Any, Any, None]:
        yield from self._dispatch(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: types.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        yield from self._dispatch(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(
        self, params: types.DidCloseTextDocumentParams
    ) -> Generator[Any, Any, None]:
        yield from self._dispatch(types.TEXT_DOCUMENT_DID_CLOSE, params)

    def _dispatch(self, method: str, params: Any) -> Generator[Any, Any, None]:
        handler = self.fm.features.get(method)
        if handler is not None:
            yield handler, (params,), None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_MESSAGE_TYPES = (RPCRequest, RPCNotification, RPCResponse, RPCError)


def _describe(exc: Exception) -> str:
    """Which fields of a message were wrong, briefly (never the values of text fields)."""
    if isinstance(exc, ClassValidationError):
        problems = transform_error(exc, format_exception=_field_problem)
        return "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
    return _first_line(exc)[:200]


def _field_problem(exc: BaseException, type_: Any) -> str:
    # lsprotocol's range checks say what was wrong; other messages may quote the value
    # (a field of buffer text, say), so they get cattrs' generic wording.
    message = _first_line(exc)
    if isinstance(exc, ValueError) and " should be in range " in message:
        return message[:120]
    return str(cattrs_format_exception(exc, type_))


def _change_uri(method: Any, data: dict[str, Any]) -> str | None:
    """The URI of a didChange, read from the raw message (its params did not deserialize)."""
    if method != types.TEXT_DOCUMENT_DID_CHANGE:
        return None
    params = data.get("params")
    document = params.get("textDocument") if isinstance(params, dict) else None
    uri = document.get("uri") if isinstance(document, dict) else None
    return uri if isinstance(uri, str) else None


_SHOWN_LIMIT = 200
_UNPARSEABLE = (json.JSONDecodeError, UnicodeDecodeError)
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError)


class _QuietClientErrors(logging.Filter):
    """pygls logs a traceback for every body that is not JSON and for every InvalidParams
    a handler raises: the client's mistakes, answered and logged in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, (*_UNPARSEABLE, *_CLIENT_GONE, JsonRpcInvalidParams))


_QUIET_CLIENT_ERRORS = _QuietClientErrors()


class InklingServer(LanguageServer):
    """State of one client session. Handlers are registered in `create_server`."""

    def __init__(self, base_layers: list[SettingsLayer], early_load: EarlyLoad | None = None) -> None:
        super().__init__("inkling", __version__, protocol_cls=InklingProtocol, max_workers=4)
        self.early_load = early_load
        """The model load `inkling serve` began before the client connected, until taken."""
        self.documents = DocumentStore()
        self.scheduler = Scheduler()
        self.cache = CompletionCache()
        self.index = ProjectIndex()
        self.project = ProjectContext(self.index)
        self._noted_cursor: dict[str, int] = {}
        self._noted_edit: dict[str, int] = {}
        self.base_layers = base_layers
        self.client_layers: list[SettingsLayer] = []
        self.settings: Settings = merge(base_layers)
        self.engine: Engine | None = None
        self.pipeline: Pipeline | None = None
        self.model_path = ""
        self.model_state = "not loaded"
        self.model_error: str | None = None
        self.last_latency_ms: float | None = None
        self.acceptance = AcceptanceLog()
        self.client_name = "unknown client"
        self._load_generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shown: dict[str, None] = {}
        self._progress_token: str | None = None
        for name in ("pygls.server", "pygls.protocol.json_rpc"):
            logging.getLogger(name).addFilter(_QUIET_CLIENT_ERRORS)

    # -- messages to the user ------------------------------------------------------

    def tell(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """Log a problem, and show it in the editor once per session."""
        log.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING, message)
        if message in self._shown:
            return
        self._shown[message] = None
        if len(self._shown) > _SHOWN_LIMIT:  # a hostile client can make endless distinct messages
            del self._shown[next(iter(self._shown))]
        self._in_loop(
            self.window_show_message,
            types.ShowMessageParams(type=kind, message=f"Inkling: {message}"),
        )

    def report_server_error(self, error: Exception, source: Any) -> None:
        if isinstance(error, _UNPARSEABLE):  # the body was not JSON: pygls calls this
            self.protocol.parse_error(error)  # type: ignore[attr-defined]
            return
        super().report_server_error(error, source)

    def _in_loop(self, fn: Any, *args: Any) -> None:
        """Call `fn` on the event loop thread (pygls' writer is not thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed() or self.protocol._shutdown:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def status(self) -> dict[str, Any]:
        template = self.pipeline.template.family if self.pipeline is not None else None
        return {
            "state": self.model_state,
            "model": self.model_path,
            "lora": str(self.engine.model.lora or "")
            if self.engine is not None and self.engine.ready
            else "",
            "template": template,
            "error": self.model_error,
            "lastLatencyMs": self.last_latency_ms,
            "cacheHits": self.cache.hits,
            "index": {
                "files": self.index.size[0],
                "definitions": self.index.size[1],
                "ring": self.project.ring_size,
            },
            "encoding": self.encoding if self.protocol._workspace is not None else None,
            "acceptance": self.acceptance.session(),
            "engine": _engine_counters(self.engine),
        }

    def send_status(self) -> None:
        self._in_loop(self.protocol.notify, STATUS_NOTIFICATION, self.status())

    # -- settings ----------------------------------------------------------------

    def apply_client_settings(self, raw: Any, source: str) -> None:
        layer = layer_from_client(raw, source)
        for warning in layer.warnings:
            self.tell(warning)
        self.client_layers = [*self.client_layers, layer]
        old, self.settings = self.settings, merge([*self.base_layers, *self.client_layers])
        if self.engine is not None or self.model_state == "failed":
            changed = changed_reload_fields(old, self.settings)
            if changed:
                log.info("settings %s changed: loading the model again", ", ".join(changed))
                self.start_model_load()

    # -- the model ---------------------------------------------------------------------

    def stop_work(self) -> None:
        """Cancel every generation, stop indexing, save the acceptance counts and free
        the model: on shutdown, on SIGTERM and when the client goes away unannounced."""
        self._load_generation += 1  # a load still under way is dropped when it ends
        early, self.early_load = self.early_load, None
        if early is not None:
            early.discard()
        self.index.stop()
        self.acceptance.flush()
        self.scheduler.close()
        engine, self.engine, self.pipeline = self.engine, None, None
        if engine is not None:
            engine.close()

    def start_model_load(self) -> None:
        self._loop = self._loop or asyncio.get_running_loop()
        self._load_generation += 1
        generation = self._load_generation
        old_engine, self.engine, self.pipeline = self.engine, None, None
        self.scheduler.cancel_all("model reload")
        if old_engine is not None:
            self._loop.run_in_executor(None, old_engine.close)
        self.model_state, self.model_error = "loading", None
        self.send_status()
        token = self._begin_progress()
        settings = self.settings
        future = self._loop.run_in_executor(None, self._load_blocking, settings, token, generation)
        future.add_done_callback(lambda f: self._model_loaded(f, token, generation))

    def _load_blocking(self, settings: Settings, token: str | None, generation: int) -> Engine:
        last = [-1]

        def progress(value: float) -> None:
            percent = int(value * 100)
            if token is not None and percent >= last[0] + 10 and generation == self._load_generation:
                last[0] = percent
                self._in_loop(self._report_progress, token, percent)

        early, self.early_load = self.early_load, None
        engine = early.take(settings, progress) if early is not None else None
        if engine is not None:
            self.model_path = str(engine.config.model_path)
            if not engine.ready:
                raise ModelError(engine.error or f"could not load {self.model_path}")
            return engine
        config, source = engine_config(settings)
        self.model_path = str(config.model_path)
        log.info("loading %s (%s)", config.model_path, source)
        engine = Engine(config)
        engine.load(progress).result()
        return engine

    def _model_loaded(self, future: asyncio.Future[Engine], token: str | None, generation: int) -> None:
        if generation != self._load_generation:  # a newer load replaced this one
            if future.exception() is None:
                self._loop.run_in_executor(None, future.result().close)  # type: ignore[union-attr]
            return
        error = future.exception()
        if error is None:
            engine = future.result()
            self.engine, self.pipeline = engine, Pipeline(engine, self.project)
            self.model_state = "ready"
            template = self.pipeline.template
            message = f"model ready in {engine.stats.load_seconds:.1f}s ({template.family} prompt format)"
            log.info("%s: %s", message, self.model_path)
        else:
            self.model_state = "failed"
            self.model_error = str(error) if isinstance(error, InklingError) else repr(error)
            message = "model failed to load"
            self.tell(
                f"could not load the model: {self.model_error}. "
                "Completions are off until the modelPath setting is fixed.",
                types.MessageType.Error,
            )
        self._end_progress(token, message)
        self.send_status()

    def _begin_progress(self) -> str | None:
        capabilities = self.client_capabilities.window
        if capabilities is None or not capabilities.work_done_progress:
            return None
        token = f"inkling-load-{uuid.uuid4().hex[:8]}"
        self._progress_token = token

        def created(*_: Any) -> None:
            self.work_done_progress.begin(
                token,
                types.WorkDoneProgressBegin(
                    title="Inkling", message="loading the model", percentage=0, cancellable=False
                ),
            )

        self.work_done_progress.create(token, created)
        return token

    def _report_progress(self, token: str, percent: int) -> None:
        if token in self.work_done_progress.tokens:
            self.work_done_progress.report(
                token, types.WorkDoneProgressReport(message="loading the model", percentage=percent)
            )

    def _end_progress(self, token: str | None, message: str) -> None:
        if token is None:
            return

        def end() -> None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
            self.work_done_progress.tokens.pop(token, None)

        if self.protocol._shutdown:
            return
        if token in self.work_done_progress.tokens:
            end()
        else:  # the client has not answered the create request yet
            assert self._loop is not None
            self._loop.call_later(0.2, lambda: self._end_progress(token, message))

    # -- completion ------------------------------------------------------------------------

    @property
    def encoding(self) -> str:
        negotiated = self.workspace.position_encoding
        key = negotiated.value if isinstance(negotiated, types.PositionEncodingKind) else negotiated
        return _ENCODINGS.get(key or "", UTF16)

    async def complete_at(self, uri: str, position: types.Position) -> tuple[Completion, Document] | None:
        """Run the pipeline for a cursor; None when there is nothing to offer."""
        settings = self.settings
        try:
            document = self.documents.get(uri)
        except DocumentError as exc:
            self.tell(str(exc))
            return None
        if not settings.language_enabled(document.language_id):
            return None
        pipeline = self.pipeline
        if pipeline is None:
            return None  # still loading, or failed (the user was told)
        encoding = self.encoding
        offset = self.documents.offset_at(uri, position.line, position.character, encoding)
        snapshot = self.documents.snapshot(uri)
        view = Document(uri, snapshot.language_id, snapshot.version, snapshot.text)
        path = _uri_to_path(uri)
        started = time.perf_counter()
        self._note_cursor(uri, path, snapshot.text, position.line)
        prefix, suffix = snapshot.text[:offset], snapshot.text[offset:]

        def request() -> CompletionRequest:
            tree = self.documents.syntax_tree_at(uri, snapshot.version, settings.max_file_bytes)
            return CompletionRequest(snapshot.text, offset, snapshot.language_id, path=path, tree=tree)

        cached = self.cache.lookup(uri, prefix, suffix)
        if cached is not None:
            # The user typed what the completion predicted: no model needed. The idle
            # model evaluates this document's prompt meanwhile (superseded by the next
            # request like any job), so that the next keystroke's request finds it cached.
            _, warming = self.scheduler.submit(lambda cancel: pipeline.warm(request(), settings, cancel))
            warming.add_done_callback(_log_failure)
            self.last_latency_ms = (time.perf_counter() - started) * 1000
            mode = Mode.BLOCK if "\n" in cached else Mode.INLINE
            return Completion(cached, offset, mode, "cache"), view

        def job(cancel: CancelToken) -> Completion:
            return pipeline.complete(request(), settings, cancel)

        token, future = self.scheduler.submit(job)
        try:
            completion = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            token.cancel("cancelled by the client", finish_batch=True)
            raise
        except (CancelledError, ModelNotReadyError):
            return None
        except InklingError as exc:
            self.tell(str(exc))
            return None
        if completion.reason != "cancelled":
            self.last_latency_ms = (time.perf_counter() - started) * 1000
        if completion.empty:
            return None
        self.cache.store(uri, prefix, suffix, completion.text)
        if self.documents.version(uri) != snapshot.version:
            # The buffer changed while this was generated: its range would land in the
            # wrong place. Editors ask again after a change; this answer is dropped
            # (the cache keeps it, should the user's typing match it).
            log.debug("dropped a completion for %s: the buffer changed meanwhile", uri)
            return None
        return completion, view

    def forget_notes(self, uri: str) -> None:
        self._noted_cursor.pop(uri, None)
        self._noted_edit.pop(uri, None)

    def note_edit(self, uri: str, line: int | None) -> None:
        """Keep project context in step with an edited buffer: its text at every
        keystroke (definitions are read again only when needed), the edited region
        once per line (None: the whole buffer was replaced)."""
        try:
            snapshot = self.documents.snapshot(uri)
        except DocumentError:
            return  # out of step: the user was told when the edit failed
        path = Path(_uri_to_path(uri))
        if line is None or self._noted_edit.get(uri) == line:
            self.project.note_text(path, snapshot.language_id, snapshot.text)
            return
        self._noted_edit[uri] = line
        self.project.note_change(path, snapshot.language_id, snapshot.text, line)

    def _note_cursor(self, uri: str, path: str, text: str, line: int) -> None:
        """Remember where the user asks for completions (once per line)."""
        if self._noted_cursor.get(uri) != line:
            self._noted_cursor[uri] = line
            self.project.note_cursor(Path(path), text, line)


def _log_failure(future: Future[Any]) -> None:
    """For background jobs: a failure the next request will meet and report is logged."""
    error = future.exception()
    if error is not None and not isinstance(error, CancelledError | ModelNotReadyError):
        log.warning("background prompt evaluation failed: %s", _first_line(error))


def _edited_line(changes: Sequence[types.TextDocumentContentChangeEvent]) -> int | None:
    """The line where the last change of a didChange ends (None for a whole-text change)."""
    if not changes:
        return None
    last = changes[-1]
    if not isinstance(last, types.TextDocumentContentChangePartial):
        return None
    return last.range.start.line + last.text.count("\n")


def _workspace_roots(params: types.InitializeParams) -> list[Path]:
    uris = [folder.uri for folder in params.workspace_folders or []]
    if not uris and params.root_uri:
        uris = [params.root_uri]
    roots = [Path(_uri_to_path(uri)) for uri in uris if uri.startswith("file:")]
    if not uris and params.root_path:
        roots = [Path(params.root_path)]
    return [root for root in roots if root.is_dir()]


def _engine_counters(engine: Engine | None) -> dict[str, float] | None:
    """The engine's running totals (requests, tokens, seconds), for `inkling bench`."""
    if engine is None:
        return None
    stats = engine.stats
    return {
        "requests": stats.requests,
        "cancelled": stats.cancelled,
        "promptTokens": stats.prompt_tokens,
        "reusedTokens": stats.reused_tokens,
        "shiftedTokens": stats.shifted_tokens,
        "prefills": stats.prefills,
        "prefillTokens": stats.prefill_tokens,
        "generatedTokens": stats.generated_tokens,
        "promptSeconds": stats.prompt_seconds,
        "generateSeconds": stats.generate_seconds,
        "loadSeconds": stats.load_seconds,
    }


def _uri_to_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def inline_items(server: InklingServer, completion: Completion, view: Document) -> types.InlineCompletionList:
    line, character = view.position_at(completion.offset, server.encoding)
    position = types.Position(line=line, character=character)
    item = types.InlineCompletionItem(
        insert_text=completion.text,
        range=types.Range(start=position, end=position),
        command=_accept_command(server, view, "inline"),
    )
    return types.InlineCompletionList(items=[item])


def completion_items(server: InklingServer, completion: Completion, view: Document) -> types.CompletionList:
    """One item carrying the whole completion, for clients without ghost text.

    Its edit starts at the beginning of the word being typed, so that clients
    which filter by that word (Helix, Neovim's menu) keep showing it."""
    encoding = server.encoding
    line_start = view.offset_at(view.position_at(completion.offset, encoding)[0], 0, encoding)
    word = _WORD_TAIL.search(view.text[line_start : completion.offset])
    word_text = word.group(0) if word else ""
    start = view.position_at(completion.offset - len(word_text), encoding)
    end = view.position_at(completion.offset, encoding)
    new_text = word_text + completion.text
    first_line = new_text.split("\n", 1)[0]
    label = first_line.strip() or new_text.strip().split("\n", 1)[0]
    if "\n" in new_text:
        label += " …"
    item = types.CompletionItem(
        label=label[:80],
        kind=types.CompletionItemKind.Text,
        detail="Inkling",
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=f"```\n{new_text}\n```"),
        filter_text=word_text + first_line[len(word_text) :],
        sort_text="0",
        preselect=True,
        insert_text_format=types.InsertTextFormat.PlainText,
        insert_text_mode=types.InsertTextMode.AsIs,
        command=_accept_command(server, view, "menu"),
        text_edit=types.TextEdit(
            range=types.Range(
                start=types.Position(line=start[0], character=start[1]),
                end=types.Position(line=end[0], character=end[1]),
            ),
            new_text=new_text,
        ),
    )
    return types.CompletionList(is_incomplete=True, items=[item])


def _accept_command(server: InklingServer, view: Document, kind: str) -> types.Command:
    """Counts the item as offered; the client runs the command when the user accepts it."""
    item_id = server.acceptance.offered(server.client_name, view.language_id, kind)
    return types.Command(title="Inkling: accepted", command=ACCEPT_COMMAND, arguments=[item_id])


def create_server(base_layers: list[SettingsLayer], early_load: EarlyLoad | None = None) -> InklingServer:
    """A server with Inkling's handlers registered; start it with start_io/start_tcp."""
    server = InklingServer(base_layers, early_load)

    @server.feature(types.INITIALIZE)
    def initialize(ls: InklingServer, params: types.InitializeParams) -> None:
        ls._loop = asyncio.get_running_loop()
        for layer in ls.base_layers:
            for warning in layer.warnings:
                ls.tell(warning)
        if params.initialization_options is not None:
            ls.apply_client_settings(params.initialization_options, "initializationOptions")
        ls.index.roots = _workspace_roots(params)
        ls.client_name = _client_name(params, with_version=False)
        log.info("client %s, positions in %s", _client_name(params), ls.encoding)

    @server.feature(types.INITIALIZED)
    def initialized(ls: InklingServer, params: types.InitializedParams) -> None:
        ls.start_model_load()
        if ls.settings.context_tokens > 0 and ls.settings.context_definitions:
            ls.index.start_crawl()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: InklingServer, params: None) -> None:
        ls.stop_work()

    @server.feature(STATUS_NOTIFICATION)
    def status(ls: InklingServer, params: Any) -> dict[str, Any]:
        """Custom request: model state, for status bars and tests."""
        return ls.status()

    @server.command(ACCEPT_COMMAND)
    def accepted(ls: InklingServer, *arguments: Any) -> None:
        """Sent by the client when the user accepts an item (for the acceptance rate)."""
        item_id = arguments[0] if arguments else None
        if not ls.acceptance.accepted(item_id):
            log.debug("%s for an unknown or already counted item %r", ACCEPT_COMMAND, item_id)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: InklingServer, params: types.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        ls.documents.open(doc.uri, doc.language_id, doc.version, doc.text)
        ls.project.note_open(Path(_uri_to_path(doc.uri)), doc.language_id, doc.text)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: InklingServer, params: types.DidChangeTextDocumentParams) -> None:
        changes: list[tuple[str, tuple[int, int] | None, tuple[int, int] | None]] = []
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                start, end = change.range.start, change.range.end
                changes.append((change.text, (start.line, start.character), (end.line, end.character)))
            else:
                changes.append((change.text, None, None))
        try:
            ls.documents.change(params.text_document.uri, params.text_document.version, changes, ls.encoding)
        except DocumentError as exc:
            ls.tell(f"could not apply an edit: {exc}")
            return
        ls.note_edit(params.text_document.uri, _edited_line(params.content_changes))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: InklingServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.documents.close(params.text_document.uri)
        ls.cache.forget(params.text_document.uri)
        ls.project.note_close(Path(_uri_to_path(params.text_document.uri)))
        ls.forget_notes(params.text_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: InklingServer, params: types.DidChangeConfigurationParams) -> None:
        raw = params.settings
        if raw is None or raw == {}:
            raw = await _pull_configuration(ls)
        if raw is not None:
            ls.apply_client_settings(raw, "workspace/didChangeConfiguration")

    @server.feature(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        types.InlineCompletionOptions(),
    )
    async def inline_completion(
        ls: InklingServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        found = await ls.complete_at(params.text_document.uri, params.position)
        if found is None:
            return types.InlineCompletionList(items=[])
        return inline_items(ls, *found)

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", "(", " ", "\n"]),
    )
    async def completion(ls: InklingServer, params: types.CompletionParams) -> types.CompletionList:
        found = await ls.complete_at(params.text_document.uri, params.position)
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        return completion_items(ls, *found)

    _register_debug_requests(server)
    return server


DOCUMENT_STATE_REQUEST = "inkling/documentState"


def _register_debug_requests(server: InklingServer) -> None:
    """Requests for tests and bug reports; they reveal fingerprints, never buffer text."""

    @server.feature(DOCUMENT_STATE_REQUEST)
    def document_state(ls: InklingServer, params: Any) -> dict[str, Any]:
        """{"uri"} -> the server's copy of that buffer: version, SHA-256 of its UTF-8
        text, size, line count, and why it is out of step with the editor (or null)."""
        uri = getattr(params, "uri", None)
        if not isinstance(uri, str):
            log.warning("%s without a uri", DOCUMENT_STATE_REQUEST)
            raise JsonRpcInvalidParams(f'{DOCUMENT_STATE_REQUEST} needs {{"uri": "..."}}')
        try:
            state = ls.documents.state(uri)
        except DocumentError as exc:
            log.warning("%s: %s", DOCUMENT_STATE_REQUEST, exc)
            raise JsonRpcInvalidParams(str(exc)) from exc
        return {
            "uri": state.uri,
            "version": state.version,
            "sha256": state.sha256,
            "utf8Bytes": state.utf8_bytes,
            "lines": state.lines,
            "outOfSync": state.out_of_sync,
        }


async def _pull_configuration(ls: InklingServer) -> Any:
    workspace = ls.client_capabilities.workspace
    if workspace is None or not workspace.configuration:
        return None
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="inkling")])
        )
    except Exception as exc:  # a client that fails this request must not stop the server
        log.warning("workspace/configuration failed: %s", exc)
        return None
    return result[0] if result else None


def _client_name(params: types.InitializeParams, with_version: bool = True) -> str:
    info = params.client_info
    if info is None:
        return "unknown client"
    return f"{info.name} {info.version or ''}".strip() if with_version else info.name
