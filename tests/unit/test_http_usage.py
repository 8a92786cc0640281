"""Per-user usage kept across restarts (SQLite in the state directory), `GET /v1/usage`'s
rules for who sees what, and `inkling keys list` / `stats`."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from lsp_server.cli import main
from lsp_server.context import Mode
from lsp_server.http import usage as usage_module
from lsp_server.http.app import create_app
from lsp_server.http.front import Front
from lsp_server.http.keys import KeyStore
from lsp_server.http.metrics import Metrics
from lsp_server.http.registry import ModelRegistry
from lsp_server.http.usage import FILE_NAME, UsageLog, read_usage
from lsp_server.pipeline import Completion, Status
from lsp_server.settings import Settings


def _completion(status: Status, text: str = "x") -> Completion:
    return Completion(text if status in (Status.OFFERED, Status.CACHED) else "", 0, Mode.INLINE, "", status)


def test_counts_survive_a_restart_and_add_up_across_servers(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    first = UsageLog(path, flush_s=3600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first.count("ana", requests=3)
    first.completed("ana", _completion(Status.OFFERED))
    first.completed("ana", _completion(Status.CACHED))
    first.completed("ana", _completion(Status.EMPTY))
    first.event("ana", "select")
    first.event("ana", "dismiss")
    assert read_usage(path) == []  # not written yet...
    (ana,) = first.read()  # ...but the server itself sees it
    assert (ana.counts.requests, ana.counts.shown, ana.counts.accepted) == (3, 2, 1)
    first.close()  # what stopping the server does

    second = UsageLog(path, flush_s=3600)  # the next server (or another one on the same file)
    second.count("ana", requests=1)
    second.count("bob", requests=2)
    second.close()
    found = {u.user: u for u in read_usage(path)}
    assert found["ana"].counts.requests == 4 and found["ana"].counts.empty == 1
    assert found["ana"].counts.acceptance == 0.5  # 1 accepted of 2 shown
    assert found["bob"].counts.acceptance is None  # no events from bob's editor: unknown, not 0
    assert [u.user for u in read_usage(path, ["bob"])] == ["bob"]


def test_the_background_writer_flushes_and_a_failed_write_keeps_the_counts(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    log = UsageLog(path, flush_s=0.05)
    log.start()
    log.count("ana", requests=1)
    deadline = time.monotonic() + 10
    while not read_usage(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    log.close()
    assert read_usage(path)[0].counts.requests == 1
    log.count("ana", requests=5)
    path.unlink()
    path.mkdir()  # the file cannot be opened: the counts wait for the next try
    with pytest.raises(sqlite3.Error):
        log.flush()
    path.rmdir()
    log.flush()
    assert read_usage(path)[0].counts.requests == 5


def test_days_select_recent_usage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / FILE_NAME
    log = UsageLog(path, flush_s=3600)
    monkeypatch.setattr(usage_module, "today", lambda: "2026-01-01")
    log.count("ana", requests=1)
    monkeypatch.setattr(usage_module, "today", lambda: "2026-03-01")
    log.count("ana", requests=2)
    log.close()
    (everything,) = read_usage(path)
    assert everything.counts.requests == 3 and (everything.first_day, everything.last_day) == (
        "2026-01-01",
        "2026-03-01",
    )
    (recent,) = read_usage(path, since="2026-02-01")
    assert recent.counts.requests == 2


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INKLING_STATE", str(tmp_path))
    return tmp_path


def _client(state: Path) -> TestClient:
    usage = UsageLog(state / FILE_NAME, flush_s=3600)
    front = Front(ModelRegistry(Settings(), {}), Metrics(), usage=usage)
    app = create_app(front, KeyStore(state / "http-keys.json"), require_keys=False, rate_limit=0)
    return TestClient(app)


def test_usage_without_keys_shows_everything_to_the_local_user(state: Path) -> None:
    client = _client(state)
    assert client.post("/v1/events", json={"type": "select"}).status_code == 200
    client.get("/health")
    client.get("/metrics")  # scrapes and health checks are nobody's usage
    answer = client.get("/v1/usage").json()
    assert [(u["user"], u["requests"], u["events"]["select"]) for u in answer["data"]] == [
        ("anonymous", 1, 1)
    ]
    assert client.get("/v1/usage?days=0").status_code == 400


def test_a_key_sees_its_own_usage_and_an_admin_key_everyones(state: Path) -> None:
    keys = KeyStore(state / "http-keys.json")
    ana, bob, boss = keys.add("ana"), keys.add("bob"), keys.add("boss", admin=True)
    client = _client(state)
    for secret in (ana, bob, bob):
        client.post("/v1/events", json={"type": "view"}, headers={"Authorization": f"Bearer {secret}"})
    mine = client.get("/v1/usage", headers={"Authorization": f"Bearer {bob}"}).json()["data"]
    assert [(u["user"], u["events"]["view"]) for u in mine] == [("bob", 2)]
    everyone = client.get("/v1/usage", headers={"X-Api-Key": boss}).json()["data"]
    assert [(u["user"], u["requests"]) for u in everyone] == [("ana", 1), ("bob", 3)]  # bob: + his usage
    refused = client.get("/v1/usage")  # keys exist: a keyless local request sees nothing
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert keys.records()[2].admin and not keys.records()[0].admin


def test_keys_list_and_stats_show_usage(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "add", "ana"]) == 0
    assert main(["keys", "add", "root", "--admin"]) == 0
    log = UsageLog(state / FILE_NAME)
    log.count("ana", requests=7)
    log.completed("ana", _completion(Status.OFFERED))
    log.event("ana", "select")
    log.count("gone", requests=1)  # a key since revoked: its usage stays
    log.close()
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split()[:4] == ["key", "created", "requests", "shown"]
    assert listed[1].split()[0] == "ana" and listed[1].split()[2:6] == ["7", "1", "1", "0"]
    assert "100%" in listed[1] and listed[2].startswith("root (admin)")
    assert main(["keys", "stats"]) == 0
    assert "gone (revoked)" in capsys.readouterr().out
    assert main(["keys", "stats", "ana", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)["data"]
    assert record["requests"] == 7 and record["acceptance_rate"] == 1.0
