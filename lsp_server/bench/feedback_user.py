"""A simulated user for the feedback loop: types editing sessions into the real server and
accepts a completion exactly when it is what they would go on to type.

Sessions come from `sessions.py` over files of one split of the standard corpora
(`lsp_server.corpora`: dev to record feedback and train on, test to measure).
Per event the client sends the edit and asks for an inline completion, and
waits for the answer (the user of this simulation always waits: acceptance then
measures the model, not the machine's load; latency is measured on the same
requests). If inserting the answer at the cursor gives a document the session
reaches later by typing alone (no jump or paste on the way), the user accepts:
the editor inserts it (didChange) and runs the item's command, and the session
goes on from that later state, so the keys it would have pressed are saved.
Otherwise the user types on. The server records what happened with
`recordFeedback` (`lsp_server.feedback`).

Figures per run: answers, accepts, acceptance (accepted / completions offered,
as the feedback store counts them: typing along one completion is one offer),
characters inserted by accepts per key pressed, keys saved, and client-side
latency of every request.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lsp_server.bench.sessions import KEYSTROKE_KINDS, Session, SessionPlan, generate_session
from lsp_server.bench.sessions import SourceFile as SessionSource
from lsp_server.documents import Document
from lsp_server.errors import InklingError
from lsp_server.languages import lsp_language_id_for_path
from lsp_server.lsp_client import SERVE_COMMAND, InklingClient

SIMULATION_PLAN = SessionPlan(lines=8, jumps=1, paste_lines=0)
"""Eight lines typed and one other line visited per session: about 300 key presses."""
LOOKAHEAD_EVENTS = 3000
"""How far ahead an accepted completion is looked for (a typing run is much shorter)."""


@dataclass
class SessionResult:
    session: str
    source: str
    keys_planned: int
    """Key presses the session has without completions."""
    keys_pressed: int = 0
    """Key presses sent, plus one per accept."""
    requests: int = 0
    answers: int = 0
    """Non-empty completions shown."""
    accepted: int = 0
    accepted_chars: int = 0
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class SimulationRun:
    label: str
    model: str
    sessions: list[SessionResult] = field(default_factory=list)
    feedback: dict[str, int] = field(default_factory=dict)
    """Records per outcome in this run's feedback store (empty when not recorded)."""
    wall_s: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def summary(self) -> dict[str, Any]:
        latencies = sorted(x for s in self.sessions for x in s.latencies_ms)
        keys_planned = sum(s.keys_planned for s in self.sessions)
        keys_pressed = sum(s.keys_pressed for s in self.sessions)
        answers = sum(s.answers for s in self.sessions)
        accepted = sum(s.accepted for s in self.sessions)
        chars = sum(s.accepted_chars for s in self.sessions)
        offers = sum(self.feedback.values())
        return {
            "label": self.label,
            "model": self.model,
            "sessions": len(self.sessions),
            "keys_planned": keys_planned,
            "keys_pressed": keys_pressed,
            "requests": len(latencies),
            "answers": answers,
            "accepted": accepted,
            "accepted_chars": chars,
            "offers": offers,
            "acceptance": accepted / offers if offers else None,
            "acceptance_per_answer": accepted / answers if answers else None,
            "chars_per_key": chars / keys_pressed if keys_pressed else None,
            "keys_saved": 1 - keys_pressed / keys_planned if keys_planned else None,
            "latency_ms": _percentiles(latencies),
            "feedback": dict(self.feedback),
            "wall_s": round(self.wall_s, 1),
            "load": [list(self.load_before), list(self.load_after)],
        }


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "mean": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": pick(0.5), "p90": pick(0.9), "mean": round(statistics.fmean(ordered), 1)}


# -- sessions from a split of the corpora -------------------------------------------------------


def split_sessions(
    split: str,
    count: int,
    *,
    languages: Sequence[str] = ("python",),
    seed: int = 1,
    plan: SessionPlan = SIMULATION_PLAN,
    skip: int = 0,
) -> list[Session]:
    """`count` sessions over distinct files of `split` (dev or test) of the standard corpora,
    the files in a fixed order (a hash of their keys and the seed), after `skip` of them."""
    from lsp_server.corpora import standard_corpora

    files = [
        source
        for language in languages
        for corpus in standard_corpora(language)
        for source in corpus.files
        if source.split == split
    ]
    chosen = _sessions_from([(s.path, s.key) for s in files], count, seed=seed, plan=plan, skip=skip)
    if len(chosen) < count:
        raise InklingError(f"the {split} split of {', '.join(languages)} gives only {len(chosen)} sessions")
    return chosen


def project_sessions(
    root: Path, split: str, count: int, *, seed: int = 1, plan: SessionPlan = SIMULATION_PLAN
) -> list[Session]:
    """`count` sessions over distinct files of one project (a user's own code): its files in
    the languages Inkling knows, half of them dev and half test by a hash of their path
    (the same halves whatever the seed), so that what is learnt on one half is measured on
    the other half of the same codebase."""
    files: list[tuple[Path, str]] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or lsp_language_id_for_path(str(path)) in ("", "plaintext"):
            continue
        key = f"{root.name}/{path.relative_to(root).as_posix()}"
        half = "dev" if hashlib.sha256(key.encode()).digest()[0] < 128 else "test"
        if half == split:
            files.append((path, key))
    chosen = _sessions_from(files, count, seed=seed, plan=plan)
    if len(chosen) < count:
        raise InklingError(f"the {split} half of {root} gives only {len(chosen)} sessions")
    return chosen


def _sessions_from(
    files: Sequence[tuple[Path, str]], count: int, *, seed: int, plan: SessionPlan, skip: int = 0
) -> list[Session]:
    """Sessions over the first `count` usable files, in an order fixed by a hash of their keys
    and the seed."""
    ordered = sorted(files, key=lambda f: hashlib.sha256(f"{seed}:{f[1]}".encode()).hexdigest())
    sessions: list[Session] = []
    for path, key in ordered[skip:]:
        if len(sessions) == count:
            break
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if text.count("\n") < 60 or "\r" in text:
            continue
        try:
            session = generate_session(
                SessionSource(path, lsp_language_id_for_path(str(path)), key),
                seed=seed,
                plan=plan,
                uri=f"file:///simulated/{key}",
            )
        except InklingError:
            continue  # too short for the plan
        sessions.append(session)
    return sessions


# -- the user ---------------------------------------------------------------------------------


class _Later:
    """The session's later states, to tell whether an accept leads where typing would."""

    def __init__(self, session: Session) -> None:
        self.states = list(session.states())
        self.by_shape: dict[tuple[int, int], list[int]] = {}
        for index, (event, text) in enumerate(self.states):
            self.by_shape.setdefault((len(text), event.cursor), []).append(index)
        self.barrier = [len(self.states)] * len(self.states)
        """First index after each that is a jump or a paste (not typing)."""
        upcoming = len(self.states)
        for index in range(len(self.states) - 1, -1, -1):
            self.barrier[index] = upcoming
            if self.states[index][0].kind not in KEYSTROKE_KINDS:
                upcoming = index

    def reached(self, after: int, text: str, cursor: int) -> int | None:
        """The first state after `after`, before the next jump or paste, that is this one."""
        limit = min(self.barrier[after], after + LOOKAHEAD_EVENTS)
        for index in self.by_shape.get((len(text), cursor), ()):
            if after < index < limit and self.states[index][1] == text:
                return index
        return None


async def simulate_session(
    client: InklingClient, session: Session, encoding: str, *, accept: bool = True
) -> SessionResult:
    """Type `session` into the server, accepting what matches; the document ends as the
    session's final text either way."""
    later = _Later(session)
    result = SessionResult(
        session.name,
        session.source,
        keys_planned=sum(1 for e in session.events if e.kind in KEYSTROKE_KINDS),
    )
    text = session.initial_text
    client.open(session.uri, session.language_id, text)
    index = -1
    while index + 1 < len(session.events):
        index += 1
        event = session.events[index]
        if event.edits:
            before = Document(session.uri, session.language_id, 0, text)
            start = before.position_at(event.offset, encoding)
            end = before.position_at(event.offset + event.delete, encoding)
            client.change(session.uri, start, end, event.insert)
        text, cursor = later.states[index][1], event.cursor
        if event.kind in KEYSTROKE_KINDS:
            result.keys_pressed += 1
        while True:  # ask; after an accept, the editor asks again at the new place
            position = Document(session.uri, session.language_id, 0, text).position_at(cursor, encoding)
            started = time.perf_counter()
            answer, command = await client.inline_item(session.uri, *position)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            if not answer:
                break
            result.answers += 1
            target = text[:cursor] + answer + text[cursor:]
            reached = later.reached(index, target, cursor + len(answer)) if accept else None
            if reached is None:
                break
            client.change(session.uri, position, position, answer)  # the editor inserts it ...
            if command is not None:
                await client.execute_command(command)  # ... and runs its command
            result.accepted += 1
            result.accepted_chars += len(answer)
            result.keys_pressed += 1  # Tab
            index, text, cursor = reached, target, cursor + len(answer)
    client.close(session.uri)
    if text != session.final_text:
        raise InklingError(f"the simulation of {session.name} did not end at the session's final text")
    return result


async def _start(
    server_args: Sequence[str], state: Path | None, stderr: TextIO | None
) -> tuple[InklingClient, str, dict[str, Any]]:
    env = dict(os.environ)
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
        env["INKLING_STATE"] = str(state)
    client = InklingClient([*SERVE_COMMAND, *server_args], env=env, stderr=stderr)
    result = await client.start()
    status = await client.wait_ready()
    if status["state"] != "ready":
        await client.stop()
        raise InklingError(f"the server could not load its model: {status.get('error')}")
    encoding = str(getattr(result.capabilities.position_encoding, "value", "utf-16") or "utf-16")
    return client, encoding, status


def _store_counts(state: Path | None) -> dict[str, int]:
    from lsp_server.feedback import FILE_NAME, FeedbackStore

    if state is None or not (state / FILE_NAME).is_file():
        return {}
    store = FeedbackStore(state / FILE_NAME)
    try:
        return dict(store.counts()["total"])
    finally:
        store.close()


async def run_simulation(
    sessions: Sequence[Session],
    *,
    server_args: Sequence[str] = (),
    state: Path | None = None,
    label: str = "",
    accept: bool = True,
    stderr: TextIO | None = None,
    progress: bool = True,
) -> SimulationRun:
    """All sessions on one server, with its feedback recorded into `state` (an Inkling state
    directory; the run's figures count the records it adds)."""
    runs = await run_side_by_side(sessions, [(label, list(server_args), state)], accept, stderr, progress)
    return runs[0]


async def run_side_by_side(
    sessions: Sequence[Session],
    servers: Sequence[tuple[str, list[str], Path | None]],
    accept: bool = True,
    stderr: TextIO | None = None,
    progress: bool = True,
) -> list[SimulationRun]:
    """The same sessions on several servers (label, arguments, state directory), all started
    at once and given each session in turn, the order changing from session to session, so
    that a change in the machine's load falls on every server alike."""
    started: list[tuple[InklingClient, str, dict[str, Any]]] = []
    runs = [SimulationRun(label, "") for label, _, _ in servers]
    before = [_store_counts(state) for _, _, state in servers]
    try:
        for _, args, state in servers:
            started.append(await _start(args, state, stderr))
        for run, (_, _, status) in zip(runs, started, strict=True):
            run.model = str(status.get("model") or "")
            run.load_before = os.getloadavg()
        for number, session in enumerate(sessions):
            order = list(range(len(servers)))
            if number % 2:
                order.reverse()
            for which in order:
                client, encoding, _ = started[which]
                began = time.perf_counter()
                result = await simulate_session(client, session, encoding, accept=accept)
                runs[which].wall_s += time.perf_counter() - began
                runs[which].sessions.append(result)
                if progress:
                    print(
                        f"[{runs[which].label or 'run'}] {number + 1}/{len(sessions)} {session.name}: "
                        f"{result.answers} answers, {result.accepted} accepted "
                        f"({result.accepted_chars} chars), {result.keys_pressed}/{result.keys_planned} keys",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        for client, _, _ in started:
            await client.stop()
    for run, (_, _, state), counted in zip(runs, servers, before, strict=True):
        run.load_after = os.getloadavg()
        after = _store_counts(state)
        run.feedback = {key: after[key] - counted.get(key, 0) for key in after}  # this run's own
    return runs


def render(summaries: Sequence[dict[str, Any]]) -> str:
    """Runs side by side."""

    def show(value: Any, kind: str) -> str:
        if value is None:
            return "-"
        if kind == "%":
            return f"{value:.1%}"
        if kind == "f":
            return f"{value:.3f}"
        return str(value)

    rows = [
        ("model", "model", ""),
        ("sessions", "sessions", ""),
        ("completions shown (answers)", "answers", ""),
        ("offers (feedback store)", "offers", ""),
        ("accepted", "accepted", ""),
        ("acceptance (accepted / offers)", "acceptance", "%"),
        ("acceptance per answer", "acceptance_per_answer", "%"),
        ("chars inserted by accepts per key pressed", "chars_per_key", "f"),
        ("keys saved", "keys_saved", "%"),
        ("latency p50 ms", "p50", ""),
        ("latency p90 ms", "p90", ""),
        ("latency mean ms", "mean", ""),
        ("requests", "requests", ""),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{s['label'] or 'run':>14}" for s in summaries)]
    for title, key, kind in rows:
        values = []
        for summary in summaries:
            value = summary["latency_ms"][key] if key in ("p50", "p90", "mean") else summary.get(key)
            if key == "model" and value:
                value = Path(str(value)).name[:14]
            values.append(f"{show(value, kind):>14}")
        lines.append(f"{title:{width}}  " + "  ".join(values))
    return "\n".join(lines)


# -- `inkling feedback simulate` ----------------------------------------------------------------


def register_simulate(actions: Any) -> None:
    from lsp_server.cli import add_setting_flags

    parser = actions.add_parser(
        "simulate",
        help="a simulated user types sessions from a split of the corpora into the real server, "
        "accepting completions that match what they go on to type",
    )
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--sessions", type=int, default=4, help="how many (distinct files)")
    parser.add_argument("--corpora", default="python", help="languages of the corpora, comma-separated")
    parser.add_argument("--lines", type=int, default=SIMULATION_PLAN.lines, help="lines typed per session")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="record feedback into this state directory and keep it (default: a temporary one)",
    )
    parser.add_argument(
        "--compare-model", default="", help="also run every session on this model, side by side"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    add_setting_flags(parser)
    parser.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.state is None:
        with tempfile.TemporaryDirectory(prefix="inkling-simulate-") as scratch:
            args.state = Path(scratch)
            return cmd_simulate(args)
    plan = SessionPlan(lines=args.lines, jumps=SIMULATION_PLAN.jumps, paste_lines=SIMULATION_PLAN.paste_lines)
    sessions = split_sessions(
        args.split, args.sessions, languages=args.corpora.split(","), seed=args.seed, plan=plan
    )
    server_args = [*setting_flags(args), "--record-feedback", "true"]
    state: Path = args.state
    servers = [("model", server_args, state)]
    if args.compare_model:
        servers.append(("compared", [*server_args, "--model-path", args.compare_model], state / "compared"))
    runs = asyncio.run(run_side_by_side(sessions, servers))
    summaries = [run.summary() for run in runs]
    print(render(summaries))
    if args.out is not None:
        args.out.write_text(
            json.dumps(
                {"runs": summaries, "sessions": [asdict(s) for run in runs for s in run.sessions]}, indent=1
            )
            + "\n",
            encoding="utf-8",
        )
    return 0


def setting_flags(args: argparse.Namespace) -> list[str]:
    """The setting flags given to this command, to pass on to `inkling serve` unchanged."""
    from lsp_server.settings import setting_specs

    passed: list[str] = []
    for spec in setting_specs():
        value = getattr(args, f"setting_{spec.name}", None)
        if value is not None:
            passed += [spec.flag, str(value)]
    return passed
