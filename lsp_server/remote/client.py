"""A small HTTP/1.1 client for inference servers (the standard library's `http.client`).

One connection per request, so that cancelling a request is closing its
socket: `shutdown()` from another thread ends a read blocked on a server
that is still evaluating the prompt, and the server, seeing the connection
gone, stops the task. Every failure is an `EngineError` whose message names
the server and what went wrong, written for the user: the server shows it
once and answers empty.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lsp_server.errors import InklingError

CONNECT_TIMEOUT_S = 3.0


class EngineError(InklingError):
    """The inference server could not be reached or gave no usable answer."""


class EngineRejectedError(EngineError):
    """The server answered 4xx: the request (not the server) was at fault."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    path: str
    """The base path, without a trailing slash ('' or '/v1', say)."""

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EngineError(
                f"engineUrl {url!r} is not an http:// or https:// URL (for example http://gpu-box:8080)"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise EngineError(f"engineUrl {url!r} has a bad port") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    def with_path(self, path: str) -> Endpoint:
        return Endpoint(self.scheme, self.host, self.port, path.rstrip("/"))


class Closer:
    """Set by a cancel token: closes the socket of the request in flight (any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.closed = False

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.closed:
                self._shutdown()

    def set(self) -> None:
        with self._lock:
            self.closed = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already closed
                self._sock.shutdown(socket.SHUT_RDWR)


class EngineClient:
    """JSON requests and server-sent-event streams against one server."""

    def __init__(self, endpoint: Endpoint, read_timeout_s: float = 30.0, api_key: str = "") -> None:
        self.endpoint = endpoint
        self.read_timeout_s = read_timeout_s
        self.api_key = api_key

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        e = self.endpoint
        if e.scheme == "https":
            return http.client.HTTPSConnection(
                e.host, e.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(e.host, e.port, timeout=timeout)

    def _headers(self, body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream"}
        if body:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def get_json(self, path: str, timeout: float | None = None) -> Any:
        return self.request_json("GET", path, None, timeout)

    def post_json(self, path: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        return self.request_json("POST", path, body, timeout)

    def request_json(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None = None
    ) -> Any:
        with self._open(method, path, body, Closer(), timeout) as response:
            data = self._read(response, path)
        try:
            return json.loads(data)
        except ValueError:
            raise EngineError(f"{self._where(path)} did not answer with JSON") from None

    def stream(
        self, path: str, body: dict[str, Any], closer: Closer, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """The JSON objects of a server-sent-event stream; ends at `[DONE]` or the end of the
        body. A closed `closer` ends it quietly (the caller knows why)."""
        with self._open("POST", path, body, closer, timeout) as response:
            try:
                while True:
                    line = response.readline()
                    if not line:
                        return
                    text = line.decode("utf-8", "replace").strip()
                    if not text.startswith("data:"):
                        if text.startswith("{"):  # an error object outside the event format
                            yield _loads(text, self._where(path))
                        continue
                    payload = text[5:].strip()
                    if payload == "[DONE]":
                        return
                    yield _loads(payload, self._where(path))
            except (OSError, http.client.HTTPException) as exc:
                if closer.closed:
                    return
                raise self._failure(exc, path) from None

    def _open(
        self, method: str, path: str, body: dict[str, Any] | None, closer: Closer, timeout: float | None
    ) -> _Response:
        connection = self._connection(CONNECT_TIMEOUT_S)
        try:
            connection.connect()
            closer.attach(connection.sock)
            if connection.sock is not None:
                connection.sock.settimeout(timeout or self.read_timeout_s)
            payload = None if body is None else json.dumps(body).encode("utf-8")
            connection.request(method, self.endpoint.path + path, payload, self._headers(body is not None))
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if closer.closed:
                raise EngineCancelledError() from None
            raise self._failure(exc, path) from None
        if response.status >= 400:
            try:
                text = response.read(4096).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                text = ""
            finally:
                connection.close()
            detail = _error_detail(text)
            where = self._where(path)
            if response.status >= 500:
                raise EngineError(f"{where} answered HTTP {response.status}{detail}")
            raise EngineRejectedError(
                f"{where} refused the request: HTTP {response.status}{detail}", response.status, text
            )
        return _Response(connection, response)

    def _read(self, response: _Response, path: str) -> bytes:
        try:
            return response.response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._failure(exc, path) from None

    def _where(self, path: str) -> str:
        return f"the engine at {self.endpoint.url}{path}"

    def _failure(self, exc: BaseException, path: str) -> EngineError:
        where = f"the engine at {self.endpoint.url}"
        if isinstance(exc, ConnectionRefusedError):
            return EngineError(f"{where} refused the connection (is the server running?)")
        if isinstance(exc, TimeoutError | socket.timeout):
            return EngineError(f"{where} did not answer in time")
        if isinstance(exc, socket.gaierror):
            return EngineError(f"{where}: unknown host {self.endpoint.host}")
        if isinstance(
            exc, http.client.RemoteDisconnected | ConnectionResetError | http.client.IncompleteRead
        ):
            return EngineError(f"{where} closed the connection in the middle of an answer")
        return EngineError(f"{where} could not be reached: {exc.__class__.__name__}")


class EngineCancelledError(Exception):
    """The request was cancelled before the server answered (not an error to report)."""


class _Response:
    def __init__(self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.connection = connection
        self.response = response

    def readline(self) -> bytes:
        return self.response.readline()

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *_: object) -> None:
        self.connection.close()


def _loads(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise EngineError(f"{where} sent an event that is not JSON") from None
    if not isinstance(value, dict):
        raise EngineError(f"{where} sent an event that is not a JSON object")
    if "error" in value and not value.get("choices") and "content" not in value:
        raise EngineError(f"{where} reported an error{_error_detail(json.dumps(value))}")
    return value


def _error_detail(text: str) -> str:
    """': message' from an error body (llama.cpp and OpenAI shapes), or ''."""
    try:
        value = json.loads(text)
    except ValueError:
        first = text.strip().splitlines()[0][:200] if text.strip() else ""
        return f": {first}" if first else ""
    error = value.get("error", value) if isinstance(value, dict) else value
    message = error.get("message") if isinstance(error, dict) else error
    return f": {str(message)[:200]}" if message else ""
