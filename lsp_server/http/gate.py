"""Who is asking, and whether they may: API keys and a per-client rate limit.

An ASGI middleware in front of the routes. It reads the key from
`Authorization: Bearer KEY` (OpenAI's clients) or `X-Api-Key`, names the
client after it (or after its address without one), and refuses with the
JSON errors clients expect: 401 for a missing or wrong key, 429 with
`Retry-After` past the rate limit (a token bucket per client). Until a key is
added, a key a local client sends anyway (OpenAI's clients always send one)
is not checked.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from lsp_server.http.errors import HttpError, error_response
from lsp_server.http.keys import KeyStore

OPEN_PATHS = frozenset({"/health"})
"""Answered without a key: load balancers and container health checks ask it."""

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimit:
    """At most `per_minute` requests a minute per client, in bursts of up to as many."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """0 to let a request through (and count it), else seconds until one would be."""
        if self.per_minute <= 0:
            return 0.0
        now = time.monotonic()
        rate = self.per_minute / 60
        with self._lock:
            bucket = self._buckets.setdefault(client, _Bucket(float(self.per_minute), now))
            bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / rate


class Gate:
    def __init__(self, app: App, keys: KeyStore, *, require_keys: bool, limit: RateLimit) -> None:
        self.app = app
        self.keys = keys
        self.require_keys = require_keys
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            client = self._client(scope)
            wait = self.limit.wait_s(client)
            if wait > 0:
                raise HttpError(
                    429, f"over {self.limit.per_minute} requests a minute", retry_after=math.ceil(wait)
                )
        except HttpError as refused:
            await error_response(refused)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _client(self, scope: Scope) -> str:
        """The key's name (set as the request's user), or the client's address."""
        secret = _presented_key(scope)
        if secret and (self.require_keys or self.keys.records()):
            record = self.keys.record_of(secret)
            if record is None:
                raise HttpError(401, "unknown API key", code="invalid_api_key")
            scope["inkling.key"] = record.name
            scope["inkling.admin"] = record.admin
            return record.name
        if self.require_keys:
            raise HttpError(401, "an API key is required (Authorization: Bearer KEY)", code="invalid_api_key")
        peer = scope.get("client")
        return str(peer[0]) if peer else "unknown"


def _presented_key(scope: Scope) -> str:
    headers: dict[bytes, bytes] = {
        bytes(name).lower(): bytes(value) for name, value in scope.get("headers", [])
    }
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get(b"x-api-key", b"").decode("latin-1").strip()
