"""JSON-RPC hardening of pygls' protocol: every request gets an answer.

A message that is not JSON-RPC gets the error JSON-RPC prescribes, a request
whose params do not deserialize gets InvalidParams (pygls would log it and
never answer), notifications before `initialize` are dropped, and the
server's own copy of each buffer is kept by the server (`documents.py`), not
by pygls. The protocol tells the server what it saw through `ProtocolHooks`
(an edit it could not read, the client gone); it never reaches into it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

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

log = logging.getLogger(__name__)


class ProtocolHooks(Protocol):
    """What the protocol tells the server."""

    def lost_edit(self, uri: str, reason: str) -> None:
        """A didChange for `uri` could not be read: the server's copy is out of step."""
        ...

    def client_gone(self) -> None:
        """The client closed its end of the connection: stop working for it."""
        ...


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

    hooks: ProtocolHooks | None = None
    """Set by the server when it is created."""
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
        if message.uri is not None and self.hooks is not None:
            self.hooks.lost_edit(message.uri, message.reason)

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
            if self.hooks is not None:
                self.hooks.client_gone()

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


_UNPARSEABLE = (json.JSONDecodeError, UnicodeDecodeError)
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError)


class _QuietClientErrors(logging.Filter):
    """pygls logs a traceback for every body that is not JSON and for every InvalidParams
    a handler raises: the client's mistakes, answered and logged in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, (*_UNPARSEABLE, *_CLIENT_GONE, JsonRpcInvalidParams))


_QUIET_CLIENT_ERRORS = _QuietClientErrors()


def quiet_client_errors() -> None:
    """Log the client's malformed messages in one line each, without pygls' tracebacks."""
    for name in ("pygls.server", "pygls.protocol.json_rpc"):
        logger = logging.getLogger(name)
        if _QUIET_CLIENT_ERRORS not in logger.filters:
            logger.addFilter(_QUIET_CLIENT_ERRORS)


def is_unparseable(error: Exception) -> bool:
    """Whether pygls failed on a body that is not JSON (answered with ParseError)."""
    return isinstance(error, _UNPARSEABLE)
