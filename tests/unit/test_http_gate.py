"""API keys and the rate limit, in front of a stand-in app."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from lsp_server.errors import InklingError
from lsp_server.http.gate import Gate, RateLimit
from lsp_server.http.keys import KeyStore


def test_a_key_is_kept_as_a_hash_in_a_private_file(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    secret = store.add("ana")
    assert secret.startswith("ink-") and secret not in store.path.read_text()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.name_of(secret) == "ana" and store.name_of(secret + "x") is None
    with pytest.raises(InklingError):
        store.add("ana")  # one key per name
    with pytest.raises(InklingError):
        store.add("ana bob")
    store.revoke("ana")
    assert store.name_of(secret) is None and store.records() == []
    with pytest.raises(InklingError):
        store.revoke("ana")


def test_the_rate_limit_lets_a_burst_through_then_says_when_to_come_back() -> None:
    limit = RateLimit(per_minute=3)
    assert [limit.wait_s("ana") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limit.wait_s("ana")
    assert 0 < wait <= 20  # one request every 20 s
    assert limit.wait_s("bob") == 0.0  # each client has its own bucket
    assert RateLimit(per_minute=0).wait_s("ana") == 0.0


def _call(
    gate: Gate, headers: list[tuple[bytes, bytes]], path: str = "/infill"
) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "path": path, "headers": headers, "client": ("127.0.0.1", 5000)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(gate(scope, receive, send))
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def _gate(tmp_path: Path, *, require_keys: bool, per_minute: int = 0) -> tuple[Gate, KeyStore, list[Any]]:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get("inkling.key"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    store = KeyStore(tmp_path / "keys.json")
    return Gate(app, store, require_keys=require_keys, limit=RateLimit(per_minute)), store, seen


def test_beyond_loopback_every_request_needs_a_valid_key(tmp_path: Path) -> None:
    gate, store, seen = _gate(tmp_path, require_keys=True)
    secret = store.add("ana")
    assert _call(gate, [])[0] == 401
    status, body = _call(gate, [(b"authorization", b"Bearer ink-wrong")])
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert _call(gate, [(b"authorization", f"Bearer {secret}".encode())])[0] == 200
    assert _call(gate, [(b"x-api-key", secret.encode())])[0] == 200
    assert seen == ["ana", "ana"]
    assert _call(gate, [], path="/health")[0] == 200  # health checks need no key


def test_on_loopback_a_key_is_only_checked_once_keys_exist(tmp_path: Path) -> None:
    gate, store, seen = _gate(tmp_path, require_keys=False)
    assert _call(gate, [(b"authorization", b"Bearer sk-anything")])[0] == 200  # clients always send one
    store.add("ana")
    assert _call(gate, [(b"authorization", b"Bearer sk-anything")])[0] == 401
    assert _call(gate, [])[0] == 200 and seen == [None, None]


def test_past_the_rate_limit_the_answer_is_429_with_retry_after(tmp_path: Path) -> None:
    gate, _, _ = _gate(tmp_path, require_keys=False, per_minute=2)
    assert [_call(gate, [])[0] for _ in range(2)] == [200, 200]
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": "/infill", "headers": [], "client": ("127.0.0.1", 1)}
    asyncio.run(gate(scope, receive, send))
    assert sent[0]["status"] == 429
    assert (b"retry-after", b"30") in sent[0]["headers"]


def test_a_server_other_machines_can_reach_will_not_start_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lsp_server.http.serve import serve_http
    from lsp_server.settings import Settings

    monkeypatch.setenv("INKLING_STATE", str(tmp_path))
    with pytest.raises(InklingError, match="inkling keys add NAME"):
        serve_http(Settings(), "0.0.0.0:18099")
    with pytest.raises(InklingError, match="requires API keys"):
        serve_http(Settings(), "127.0.0.1:18099", require_keys=True)
