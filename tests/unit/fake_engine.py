"""A scripted inference server on a local port: llama.cpp's and the OpenAI shapes, and faults."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """What the fake server answers."""

    tokens: list[int] = field(default_factory=list)
    """Token ids streamed by /completion (each with the piece `pieces` gives it)."""
    pieces: dict[int, str] = field(default_factory=dict)
    top: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    """Per position: the top tokens sent with `n_probs` (default: the streamed token alone)."""
    stop_type: str = "eos"
    delay_s: float = 0.0
    """Wait this long before each streamed token."""
    status: int = 200
    """Answer /completion with this HTTP status (>= 400: an error body)."""
    hang_s: float = 0.0
    """Wait this long before answering /completion at all."""
    close_after: int = -1
    """Drop the connection after streaming this many tokens (>= 0)."""
    n_ctx: int = 2048
    slots: int = 2
    model_path: str = "/models/fake.gguf"
    openai_text: list[str] = field(default_factory=list)
    """Text pieces streamed by /v1/completions."""
    openai_after: dict[str, list[str]] = field(default_factory=dict)
    """Pieces streamed instead when the prompt ends with the key."""
    openai_only: bool = False
    """Answer /props with 404 (an OpenAI-compatible server)."""


class FakeEngine:
    def __init__(self, script: Script, port: int = 0) -> None:
        self.script = script
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.disconnects = 0
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                engine.requests.append((self.path, {}))
                s = engine.script
                if self.path == "/props" and not s.openai_only:
                    self._json(
                        {
                            "default_generation_settings": {"n_ctx": s.n_ctx},
                            "total_slots": s.slots,
                            "model_path": s.model_path,
                            "model_alias": "fake",
                            "bos_token": "<s>",
                            "eos_token": "</s>",
                            "build_info": "fake",
                        }
                    )
                elif self.path in ("/v1/models", "/models"):
                    self._json({"data": [{"id": "fake-model", "max_model_len": s.n_ctx}]})
                else:
                    self._json({"error": {"message": "not found"}}, 404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                engine.requests.append((self.path, body))
                if self.path == "/completion":
                    self._completion(body)
                elif self.path == "/v1/completions":
                    self._openai(body)
                elif self.path == "/tokenize":
                    text = body["content"]
                    ids = [ord(c) for c in text]
                    if body.get("add_special"):
                        ids = [1, *ids]
                    self._json({"tokens": ids})
                elif self.path == "/detokenize":
                    self._json({"content": "".join(chr(t) for t in body["tokens"] if t > 3)})
                else:
                    self._json({"error": {"message": "not found"}}, 404)

            def _json(self, value: Any, status: int = 200) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _events(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

            def _send(self, value: Any) -> bool:
                try:
                    self.wfile.write(f"data: {json.dumps(value)}\n\n".encode())
                    self.wfile.flush()
                except OSError:
                    engine.disconnects += 1
                    return False
                return True

            def _completion(self, body: dict[str, Any]) -> None:
                s = engine.script
                if s.hang_s:
                    time.sleep(s.hang_s)
                if s.status >= 400:
                    self._json({"error": {"code": s.status, "message": "the fake is unwell"}}, s.status)
                    return
                self._events()
                if body.get("n_predict") == 0:
                    self._send({"content": "", "stop": True, "stop_type": "limit", "timings": {"cache_n": 0}})
                    return
                slot = body.get("id_slot", -1)
                slot = 1 if slot < 0 else slot
                prompt = list(body.get("prompt") or [])
                # A request that goes on from part of the script (the prompt ends with its
                # first tokens) is answered with the rest, as a model would.
                start = next(
                    (k for k in range(min(len(prompt), len(s.tokens)), 0, -1) if prompt[-k:] == s.tokens[:k]),
                    0,
                )
                rest = s.tokens[start:]
                tokens = rest[: body.get("n_predict", len(rest))]
                for position, token in enumerate(tokens):
                    if position == s.close_after:
                        self.close_connection = True
                        return
                    if s.delay_s:
                        time.sleep(s.delay_s)
                    event: dict[str, Any] = {
                        "content": s.pieces.get(token, ""),
                        "tokens": [token],
                        "stop": False,
                        "id_slot": slot,
                    }
                    if body.get("n_probs"):
                        top = s.top.get(position, [(token, 0.0)])
                        event["completion_probabilities"] = [
                            {
                                "id": token,
                                "logprob": 0.0,
                                "top_logprobs": [
                                    {"id": t, "logprob": p, "token": chr(t) if t > 3 else ""} for t, p in top
                                ],
                            }
                        ]
                    if not self._send(event):
                        return
                stop_type = s.stop_type if len(tokens) == len(rest) else "limit"
                self._send(
                    {
                        "content": "",
                        "stop": True,
                        "stop_type": stop_type,
                        "id_slot": slot,
                        "timings": {"cache_n": max(0, len(body["prompt"]) - 1)},
                    }
                )

            def _openai(self, body: dict[str, Any]) -> None:
                s = engine.script
                if s.status >= 400:
                    self._json({"error": {"message": "the fake is unwell"}}, s.status)
                    return
                self._events()
                prompt = str(body.get("prompt", ""))
                pieces = next((v for k, v in s.openai_after.items() if prompt.endswith(k)), s.openai_text)
                for piece in pieces[: body.get("max_tokens", 1000)]:
                    if s.delay_s:
                        time.sleep(s.delay_s)
                    if not self._send({"choices": [{"index": 0, "text": piece, "finish_reason": None}]}):
                        return
                self._send({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
                with suppress(OSError):
                    self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.requests if p == path]


@contextmanager
def fake_engine(script: Script, port: int = 0) -> Iterator[FakeEngine]:
    engine = FakeEngine(script, port)
    thread = threading.Thread(target=engine.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        engine.server.shutdown()
        engine.server.server_close()
