"""The simulated user of the feedback loop, against scripted servers (no model): it accepts
exactly what it would go on to type, and every session still ends at its final text."""

from __future__ import annotations

import asyncio
import sysconfig
from pathlib import Path
from typing import Any

from lsprotocol import types

from lsp_server.bench.feedback_user import SIMULATION_PLAN, SessionResult, SimulationRun, simulate_session
from lsp_server.bench.sessions import Session, SourceFile, generate_session
from lsp_server.documents import Document

SOURCE = SourceFile(Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py", "python", "textwrap.py")


class ScriptedClient:
    """Keeps the document as the server would and answers with `answer(text, offset)`."""

    def __init__(self, session: Session, answer: Any) -> None:
        self.session = session
        self.answer = answer
        self.text = ""
        self.commands: list[types.Command] = []
        self.asked = 0

    def open(self, uri: str, language_id: str, text: str) -> None:
        self.text = text

    def change(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        document = Document(uri, "python", 0, self.text)
        a, b = document.offset_at(*start), document.offset_at(*end)
        self.text = self.text[:a] + text + self.text[b:]

    async def inline_item(self, uri: str, line: int, character: int) -> tuple[str, types.Command | None]:
        self.asked += 1
        offset = Document(uri, "python", 0, self.text).offset_at(line, character)
        text = self.answer(self.text, offset)
        return text, types.Command(title="t", command="inkling.accepted", arguments=[str(self.asked)])

    async def execute_command(self, command: types.Command) -> None:
        self.commands.append(command)

    def close(self, uri: str) -> None:
        pass


def oracle(session: Session) -> Any:
    """A perfect model: what the user types next at the cursor, up to the end of the line."""
    states = list(session.states())

    def answer(text: str, offset: int) -> str:
        index = next((i for i, (e, s) in enumerate(states) if s == text and e.cursor == offset), None)
        if index is None:
            return ""
        best = ""
        for later, state in states[index + 1 :]:
            if later.kind not in ("type", "newline", "backspace"):
                break
            grown = len(state) - len(text)
            inserted = state[offset : offset + grown]
            if (
                grown > 0
                and state == text[:offset] + inserted + text[offset:]
                and later.cursor == offset + grown
            ):
                best = inserted
            if "\n" in best:
                break
        return best.split("\n", 1)[0] or best[:1]

    return answer


def run(session: Session, answer: Any) -> tuple[SessionResult, ScriptedClient]:
    client = ScriptedClient(session, answer)
    result = asyncio.run(simulate_session(client, session, "utf-16"))  # type: ignore[arg-type]
    assert client.text == session.final_text
    return result, client


def test_a_perfect_model_is_accepted_and_saves_keys() -> None:
    session = generate_session(SOURCE, seed=3, plan=SIMULATION_PLAN)
    result, client = run(session, oracle(session))
    assert result.accepted > 0 and len(client.commands) == result.accepted
    assert result.accepted_chars > result.accepted
    assert result.keys_pressed < result.keys_planned / 2
    assert result.requests == len(result.latencies_ms) == client.asked


def test_a_wrong_model_is_never_accepted() -> None:
    session = generate_session(SOURCE, seed=3, plan=SIMULATION_PLAN)
    result, client = run(session, lambda text, offset: "@@never typed@@")
    assert result.accepted == 0 and not client.commands
    assert result.answers == result.requests and result.keys_pressed == result.keys_planned


def test_summary_figures() -> None:
    run_ = SimulationRun("x", "m.gguf", feedback={"accepted": 2, "rejected": 6, "partial": 2})
    run_.sessions.append(
        SessionResult(
            "s",
            "src",
            keys_planned=100,
            keys_pressed=60,
            requests=3,
            answers=5,
            accepted=2,
            accepted_chars=30,
            latencies_ms=[10.0, 20.0, 30.0],
        )
    )
    summary = run_.summary()
    assert summary["acceptance"] == 0.2 and summary["acceptance_per_answer"] == 0.4
    assert summary["chars_per_key"] == 0.5 and summary["keys_saved"] == 0.4
    assert summary["latency_ms"]["p50"] == 20.0


def test_project_sessions_split_one_codebase_in_two_fixed_halves(tmp_path: Path) -> None:
    """A user's own code: feedback from one half of its files, measured on the other half."""
    from lsp_server.bench.feedback_user import project_sessions

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    project = tmp_path / "project"
    project.mkdir()
    for name in (
        "textwrap", "shlex", "calendar", "glob", "heapq", "queue", "sched", "string",
        "difflib", "base64", "csv", "gettext", "pprint", "random", "statistics", "tempfile",
    ):  # fmt: skip
        (project / f"{name}.py").write_text(
            (stdlib / f"{name}.py").read_text(encoding="utf-8"), encoding="utf-8"
        )
    (project / "notes.txt").write_text("not code\n" * 100, encoding="utf-8")
    dev = project_sessions(project, "dev", 2, seed=1)
    test = project_sessions(project, "test", 2, seed=1)
    names = lambda sessions: {s.source.split(",")[0] for s in sessions}  # noqa: E731
    assert len(dev) == len(test) == 2 and not names(dev) & names(test)
    assert all(name.startswith("project/") and name.endswith(".py") for name in names(dev) | names(test))
    # The halves do not move with the seed (only the order in each half does).
    for seed in (2, 3, 7):
        assert not names(project_sessions(project, "dev", 2, seed=seed)) & names(test)
        assert not names(project_sessions(project, "test", 2, seed=seed)) & names(dev)
