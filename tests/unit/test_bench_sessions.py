"""Session generation for `inkling bench`: deterministic, human-paced, and exact."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pytest

from lsp_server.bench.sessions import (
    EVENT_KINDS,
    QUICK_PLAN,
    SessionPlan,
    SourceFile,
    TypingStyle,
    default_sources,
    generate_session,
    load_sessions,
    save_sessions,
    source_for_path,
)
from lsp_server.errors import InklingError

PLAN = SessionPlan(lines=8, jumps=2, paste_lines=3)


@pytest.fixture(scope="module")
def sources() -> list[SourceFile]:
    return default_sources()


def test_the_same_seed_gives_the_same_session_and_another_seed_another(sources: list[SourceFile]) -> None:
    python = sources[0]
    first = generate_session(python, seed=7, plan=PLAN)
    assert generate_session(python, seed=7, plan=PLAN).fingerprint() == first.fingerprint()
    assert generate_session(python, seed=8, plan=PLAN).fingerprint() != first.fingerprint()


@pytest.mark.parametrize("index", [0, 1, 2])
def test_events_rebuild_the_real_file_from_the_holes(sources: list[SourceFile], index: int) -> None:
    source = sources[index]
    session = generate_session(source, seed=3, plan=PLAN)
    original = source.path.read_text(encoding="utf-8").split("\n")[:300]
    assert session.final_text.rstrip("\n") == "\n".join(original).rstrip("\n")
    assert (
        len(session.initial_text.splitlines()) == len(session.final_text.splitlines()) - (PLAN.lines - 1) - 2
    )
    text = session.initial_text
    for event, after in session.states():
        text = text[: event.offset] + event.insert + text[event.offset + event.delete :]
        assert text == after and 0 <= event.cursor <= len(text)
    assert text == session.final_text


def test_a_session_has_every_kind_of_edit_at_human_speed(sources: list[SourceFile]) -> None:
    style = TypingStyle()
    session = generate_session(sources[0], seed=1, plan=PLAN, style=style)
    kinds = Counter(e.kind for e in session.events)
    assert set(kinds) == set(EVENT_KINDS)
    assert kinds["jump"] == 2 * PLAN.jumps  # there and back
    assert kinds["paste"] == 1
    paste = next(e for e in session.events if e.kind == "paste")
    assert paste.insert.count("\n") == PLAN.paste_lines - 1
    assert kinds["type"] > 100
    for before, event in zip(session.events, session.events[1:], strict=False):
        gap = event.t_ms - before.t_ms
        allowed = [style.key_ms, style.pause_ms, style.think_ms]
        assert any(low <= gap <= high for low, high in allowed), (gap, event.kind)
    gaps = [b.t_ms - a.t_ms for a, b in zip(session.events, session.events[1:], strict=False)]
    assert sum(style.pause_ms[0] <= g for g in gaps) >= 2  # it pauses now and then
    assert session.end_ms == session.events[-1].t_ms + style.final_pause_ms


def test_backspace_fixes_what_was_typed(sources: list[SourceFile]) -> None:
    session = generate_session(sources[1], seed=2, plan=QUICK_PLAN)
    deletions = [e for e in session.events if e.kind == "backspace"]
    assert deletions and all(e.delete == 1 and e.insert == "" and e.cursor == e.offset for e in deletions)


def test_sessions_round_trip_through_json(tmp_path: Path, sources: list[SourceFile]) -> None:
    sessions = [generate_session(s, seed=1, plan=QUICK_PLAN) for s in sources]
    path = tmp_path / "sessions.json"
    save_sessions(path, sessions)
    loaded = load_sessions(path)
    assert [s.fingerprint() for s in loaded] == [s.fingerprint() for s in sessions]
    assert loaded == sessions


def test_a_damaged_session_file_is_refused_with_a_reason(tmp_path: Path, sources: list[SourceFile]) -> None:
    session = generate_session(sources[0], seed=1, plan=QUICK_PLAN)
    data = session.as_dict()
    data["events"][5]["offset"] = len(session.final_text) + 100
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"sessions": [data]}))
    with pytest.raises(InklingError, match="outside the text"):
        load_sessions(path)
    data = session.as_dict()
    data["events"][3]["insert"] = "#"
    path.write_text(json.dumps({"sessions": [data]}))
    with pytest.raises(InklingError, match="final_text"):
        load_sessions(path)
    path.write_text("{not json")
    with pytest.raises(InklingError, match="cannot read sessions"):
        load_sessions(path)
    path.write_text(json.dumps({"sessions": [{"name": "x"}]}))
    with pytest.raises(InklingError, match="not a session record"):
        load_sessions(path)


def test_any_file_can_be_a_source_but_it_must_be_long_enough(tmp_path: Path) -> None:
    long_file = tmp_path / "long.go"
    long_file.write_text("".join(f"func f{i}() int {{\n\treturn {i} * {i}\n}}\n\n" for i in range(80)))
    source = source_for_path(long_file)
    assert source.language_id == "go"
    session = generate_session(source, seed=1, plan=QUICK_PLAN)
    assert session.language_id == "go" and session.uri.endswith("/long.go")
    short = tmp_path / "short.py"
    short.write_text("x = 1\n")
    with pytest.raises(InklingError, match="too short"):
        generate_session(source_for_path(short), seed=1, plan=QUICK_PLAN)
    with pytest.raises(InklingError, match="not a file"):
        source_for_path(tmp_path / "missing.py")


def test_with_a_workspace_sessions_name_their_real_files_inside_it(tmp_path: Path) -> None:
    from lsp_server.bench.cli import _sessions

    project = tmp_path / "project"
    project.mkdir()
    inside = project / "long.go"
    inside.write_text("".join(f"func f{i}() int {{\n\treturn {i} * {i}\n}}\n\n" for i in range(80)))
    outside = tmp_path / "other.go"
    outside.write_text(inside.read_text())

    def args(files: list[Path], workspace: Path | None) -> argparse.Namespace:
        return argparse.Namespace(
            sessions=None,
            scenario="typing",
            files=20,
            file=files,
            quick=True,
            seed=1,
            lines=3,
            jumps=1,
            paste_lines=2,
            workspace=workspace,
        )

    (session,) = _sessions(args([inside], project))
    assert session.uri == inside.resolve().as_uri()  # the server resolves imports from there
    (plain,) = _sessions(args([inside], None))
    assert plain.uri == "file:///bench/long.go"  # no project around it: the floor's prompts stay the server's
    assert plain.fingerprint() != "" and plain.events == session.events
    with pytest.raises(InklingError, match="does not hold"):
        _sessions(args([inside, outside], project))


def test_a_whole_line_session_asks_at_opening_after_a_jump_and_after_enter() -> None:
    from lsp_server.bench.sessions import WAIT_MS, generate_whole_line_session, whole_line_sources

    sources = whole_line_sources(2, seed=1)
    assert len(sources) == 2
    for seed, source in enumerate(sources, start=1):
        session = generate_whole_line_session(source, seed=seed)
        waits = [(event, text) for event, text in session.states() if event.scenario]
        assert [event.scenario for event, _ in waits] == ["open", "jump", "enter"]
        opened, _ = waits[0]
        assert opened.t_ms == 0
        for event, text in waits:
            later = [e.t_ms for e in session.events if e.t_ms > event.t_ms] or [session.end_ms]
            assert min(later) - event.t_ms >= WAIT_MS  # the user waits for the answer
            line = text[text.rfind("\n", 0, event.cursor) + 1 : event.cursor]
            if event.scenario != "open" or seed % 2 == 0:
                assert line.strip() == ""  # a blank line, after its indentation
            else:
                assert line.strip()  # the first half of the line, nothing typed before
