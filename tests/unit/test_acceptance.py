"""The acceptance counts: offered ids, accepts counted once, merged safely into one file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsp_server.acceptance import AcceptanceLog, read_record, state_dir
from lsp_server.stats import render, with_rates


def test_accept_counts_once_and_only_for_offered_ids(tmp_path: Path) -> None:
    log = AcceptanceLog(tmp_path / "a.json", flush_interval_s=3600)
    first = log.offered("Neovim", "python", "menu")
    log.offered("Neovim", "python", "menu")
    assert log.accepted(first) is True
    assert log.accepted(first) is False  # a second accept of the same item
    assert log.accepted("never-offered") is False
    assert log.accepted(None) is False
    assert log.session() == {"shown": 2, "accepted": 1, "rate": 0.5}
    record = read_record(tmp_path / "a.json")  # an accept is written at once
    assert record["total"] == {"shown": 2, "accepted": 1}
    assert record["byClient"] == {"Neovim": {"shown": 2, "accepted": 1}}
    assert record["byKind"] == {"menu": {"shown": 2, "accepted": 1}}


def test_two_servers_add_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    vim, code = AcceptanceLog(path, 3600), AcceptanceLog(path, 3600)
    vim.accepted(vim.offered("Neovim", "go", "menu"))
    code.offered("Visual Studio Code", "python", "inline")
    code.flush()
    vim.offered("Neovim", "go", "menu")
    vim.flush()
    record = read_record(path)
    assert record["total"] == {"shown": 3, "accepted": 1}
    assert record["byLanguage"] == {"go": {"shown": 2, "accepted": 1}, "python": {"shown": 1, "accepted": 0}}


def test_a_broken_file_is_replaced_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("{not json")
    log = AcceptanceLog(path, 3600)
    log.accepted(log.offered("Helix", "rust", "menu"))
    assert json.loads(path.read_text())["total"] == {"shown": 1, "accepted": 1}


def test_an_unwritable_place_keeps_the_counts(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = AcceptanceLog(blocker / "a.json", 3600)  # its parent is a file
    log.accepted(log.offered("Neovim", "c", "menu"))
    assert log.session()["accepted"] == 1
    fixed = AcceptanceLog(tmp_path / "ok.json", 3600)
    fixed._pending = log._pending
    fixed.flush()
    assert read_record(tmp_path / "ok.json")["total"] == {"shown": 1, "accepted": 1}


def test_state_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("INKLING_STATE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_dir() == tmp_path / "inkling"
    monkeypatch.setenv("INKLING_STATE", str(tmp_path / "mine"))
    assert state_dir() == tmp_path / "mine"


def test_stats_report(tmp_path: Path) -> None:
    log = AcceptanceLog(tmp_path / "a.json", 3600)
    for _ in range(3):
        log.offered("Neovim", "python", "menu")
    log.accepted(log.offered("Neovim", "python", "menu"))
    record = read_record(tmp_path / "a.json")
    assert with_rates(record)["total"] == {"shown": 4, "accepted": 1, "rate": 0.25}
    text = render(record, tmp_path / "a.json")
    assert "editor Neovim" in text and "25.0%" in text
