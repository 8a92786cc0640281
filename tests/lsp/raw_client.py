"""A byte-level stdio client for fault tests: it can send what no LSP library would.

pytest-lsp and pygls' client only send well-formed messages; the fault suite
also needs broken JSON, arrays, wrong protocol versions and raw frames. This
client frames bytes itself, reads the server's frames on a thread, and keeps
the server's stderr so a test can check what was (not) logged.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

LAUNCHER = (sys.executable, "-m", "lsp_server")
ROOT = Path(__file__).resolve().parents[2]


class RawServer:
    """`inkling serve` as a subprocess, spoken to frame by frame."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        global_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        wrapper: Sequence[str] = (),
        launcher: Sequence[str] = LAUNCHER,
        cwd: Path = ROOT,
    ) -> None:
        """`wrapper` goes before the interpreter (e.g. `unshare -n`); `global_args`
        before `serve` (e.g. `--log-level DEBUG`); `args` after it."""
        full = [*wrapper, *launcher, *global_args, "serve", *args]
        self.process = subprocess.Popen(
            full,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self.received: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self._next_id = 0
        assert self.process.stdout is not None and self.process.stderr is not None
        self._stop_reading = threading.Event()
        self._reader = threading.Thread(target=self._read_frames, args=(self.process.stdout,), daemon=True)
        self._reader.start()
        threading.Thread(target=self._read_stderr, args=(self.process.stderr,), daemon=True).start()

    # -- reading -------------------------------------------------------------------

    def _read_frames(self, stream: IO[bytes]) -> None:
        """Parse frames from the raw pipe; stoppable, so that a test can close it."""
        fd = stream.fileno()
        buffer = b""
        try:
            while not self._stop_reading.is_set():
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                buffer += chunk
                while (end := buffer.find(b"\r\n\r\n")) >= 0:
                    headers = buffer[:end].decode("ascii").split("\r\n")
                    sizes = (h.split(":")[1] for h in headers if h.lower().startswith("content-length"))
                    length = int(next(sizes))
                    body_end = end + 4 + length
                    if len(buffer) < body_end:
                        break
                    self.received.put(json.loads(buffer[end + 4 : body_end]))
                    buffer = buffer[body_end:]
        finally:
            self.received.put(None)

    def close_stdout(self) -> None:
        """Stop reading the server's output and close our end: its writes now fail."""
        self._stop_reading.set()
        self._reader.join(5)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.stderr_lines.append(line.decode("utf-8", "replace"))

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next frame from the server; None when stdout closed or nothing came in time."""
        try:
            message = self.received.get(timeout=timeout)
        except queue.Empty:
            return None
        if message is not None:
            self.seen.append(message)
        return message

    def response(self, msg_id: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the response to `msg_id` (None: a response with id null)."""
        for message in self.seen:
            if "method" not in message and message.get("id") == msg_id:
                self.seen.remove(message)
                return message
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.next_message(left)
            if message is None:
                break
            if "method" not in message and message.get("id") == msg_id:
                self.seen.remove(message)
                return message
        if not self._reader.is_alive() and not self._stop_reading.is_set():  # the server closed stdout
            try:
                code: int | None = self.process.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            raise TimeoutError(
                f"no response to {msg_id!r}: the server closed its output (exit code {code}); "
                f"stderr:\n{self.stderr[-3000:]}"
            )
        raise TimeoutError(f"no response to {msg_id!r} within {timeout}s; stderr:\n{self.stderr[-3000:]}")

    def notifications(self, method: str) -> list[Any]:
        """Params of the notifications of `method` received so far."""
        while self.next_message(0.0) is not None:
            pass
        return [m.get("params") for m in self.seen if m.get("method") == method and "id" not in m]

    # -- writing -------------------------------------------------------------------

    def send_bytes(self, body: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def send(self, message: Any) -> None:
        self.send_bytes(json.dumps(message).encode("utf-8"))

    def request(self, method: str, params: Any = None, msg_id: Any = None) -> Any:
        if msg_id is None:
            self._next_id += 1
            msg_id = self._next_id
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id

    def call(self, method: str, params: Any = None, timeout: float = 30.0) -> dict[str, Any]:
        return self.response(self.request(method, params), timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    # -- LSP conveniences ------------------------------------------------------------

    def initialize(
        self, options: dict[str, Any] | None = None, encodings: Sequence[str] = ("utf-16",)
    ) -> Any:
        result = self.call(
            "initialize",
            {
                "processId": None,
                "rootUri": None,
                "capabilities": {"general": {"positionEncodings": list(encodings)}},
                "initializationOptions": options,
            },
        )
        self.notify("initialized", {})
        return result

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.call("inkling/status")["result"]
            if state["state"] in ("ready", "failed") or time.monotonic() > deadline:
                return dict(state)
            time.sleep(0.05)

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language, "version": version, "text": text}},
        )

    def change(self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        change = {
            "range": {
                "start": {"line": start[0], "character": start[1]},
                "end": {"line": end[0], "character": end[1]},
            },
            "text": text,
        }
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
        )

    def inline_request(self, uri: str, line: int, character: int, msg_id: Any = None) -> Any:
        return self.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2},
            },
            msg_id,
        )

    def document_state(self, uri: str) -> dict[str, Any]:
        return dict(self.call("inkling/documentState", {"uri": uri})["result"])

    def shutdown_and_exit(self, timeout: float = 30.0) -> int:
        response = self.call("shutdown", None, timeout)
        assert "error" not in response, response
        self.notify("exit")
        return self.wait(timeout)

    # -- the process -----------------------------------------------------------------

    def wait(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
