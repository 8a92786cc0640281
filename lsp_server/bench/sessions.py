"""Editing sessions as data: what a person types into a real file, and when.

A session starts from a real file (the first 300 lines) with holes in it: a
stretch of consecutive lines, and a few single lines elsewhere. The person
types the stretch character by character (80-300 ms a key, now and then a
pause of 1-3 s), makes typos and fixes them with backspace, sometimes erases
the end of a line and types it again, jumps to the other holes to type the
missing line there and comes back, and pastes a few lines once. Enter inserts
the line break plus the next line's indentation, as an editor's auto-indent
does. Replaying every event on the initial text gives the file back exactly.

Generation is seeded and deterministic; a session is saved as JSON with its
texts, so a run can be repeated exactly on any machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import random
import string
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from lsp_server.errors import InklingError
from lsp_server.languages import lsp_language_id_for_path

EventKind = Literal["type", "backspace", "newline", "paste", "jump"]
EVENT_KINDS: tuple[EventKind, ...] = ("type", "backspace", "newline", "paste", "jump")
KEYSTROKE_KINDS: frozenset[str] = frozenset({"type", "backspace", "newline"})
"""Events that are one key press (a paste and a cursor jump are not)."""
PAUSE_MS = 1000
"""A gap of at least this long after an event is a pause: the user waits for ghost text."""


@dataclass(frozen=True)
class Event:
    """One thing the user does; the client sends didChange (if it edits) and a request."""

    t_ms: int
    """When it happens, in ms from the session start."""
    kind: EventKind
    offset: int
    """str index where the edit starts (for a jump: where the cursor goes)."""
    delete: int
    """Characters removed at `offset`."""
    insert: str
    cursor: int
    """str index of the cursor after the event."""
    scenario: str = ""
    """What the user waits for here, where a session was made for it: "open" (a file just
    opened, asked at once), "jump" (the cursor moved to another function), "enter" (a new
    line in a file being edited); "" for plain typing."""

    @property
    def edits(self) -> bool:
        return self.delete > 0 or bool(self.insert)


@dataclass(frozen=True)
class Session:
    name: str
    language_id: str
    uri: str
    source: str
    """Where the text came from (file and line range)."""
    seed: int
    initial_text: str
    final_text: str
    events: tuple[Event, ...]
    end_ms: int
    """The session ends this long after its start (after a final pause)."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["events"] = [asdict(e) for e in self.events]
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Session:
        try:
            events = tuple(Event(**e) for e in data["events"])
            session = Session(
                name=str(data["name"]),
                language_id=str(data["language_id"]),
                uri=str(data["uri"]),
                source=str(data["source"]),
                seed=int(data["seed"]),
                initial_text=str(data["initial_text"]),
                final_text=str(data["final_text"]),
                events=events,
                end_ms=int(data["end_ms"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InklingError(f"not a session record: {exc}") from exc
        session.check()
        return session

    def fingerprint(self) -> str:
        """Equal fingerprints: the same workload, event for event."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def states(self) -> Iterator[tuple[Event, str]]:
        """Each event with the document text after it."""
        text = self.initial_text
        for event in self.events:
            text = text[: event.offset] + event.insert + text[event.offset + event.delete :]
            yield event, text

    def check(self) -> None:
        """Raise InklingError unless the events are ordered, in range, and end at final_text."""
        text = self.initial_text
        last = 0
        for index, event in enumerate(self.events):
            where = f"session {self.name!r}, event {index}"
            if event.kind not in EVENT_KINDS:
                raise InklingError(f"{where}: unknown kind {event.kind!r}")
            if event.t_ms < last:
                raise InklingError(f"{where}: time goes backwards ({event.t_ms} < {last})")
            if not 0 <= event.offset <= event.offset + event.delete <= len(text):
                raise InklingError(f"{where}: edit {event.offset}+{event.delete} outside the text")
            last = event.t_ms
            text = text[: event.offset] + event.insert + text[event.offset + event.delete :]
            if not 0 <= event.cursor <= len(text):
                raise InklingError(f"{where}: cursor {event.cursor} outside the text")
        if text != self.final_text:
            raise InklingError(f"session {self.name!r}: the events do not lead to final_text")
        if self.end_ms < last:
            raise InklingError(f"session {self.name!r}: end_ms before the last event")


def save_sessions(path: Path, sessions: Sequence[Session]) -> None:
    payload = {"sessions": [s.as_dict() for s in sessions]}
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def load_sessions(path: Path) -> list[Session]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InklingError(f"cannot read sessions from {path}: {exc}") from exc
    records = payload.get("sessions") if isinstance(payload, dict) else None
    if not isinstance(records, list) or not records:
        raise InklingError(f"{path} holds no sessions (expected {{'sessions': [...]}})")
    return [Session.from_dict(record) for record in records]


# -- where the text comes from ---------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    path: Path
    language_id: str
    label: str


def _package_file(package: str, relative: str, why: str) -> Path:
    spec = importlib.util.find_spec(package)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise InklingError(f"the {why} source needs the {package!r} package; install it or use --file")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise InklingError(f"{path} is missing; use --file to pick other source files")
    return path


def default_sources() -> list[SourceFile]:
    """Real code in three languages, from files every Inkling install (with [dev]) has."""
    stdlib = Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py"
    c_file = _package_file("numpy", "f2py/src/fortranobject.c", "C")
    js_file = _package_file("matplotlib", "backends/web_backend/js/mpl.js", "JavaScript")
    return [
        SourceFile(stdlib, "python", "Python stdlib textwrap.py"),
        SourceFile(c_file, "c", "numpy f2py/src/fortranobject.c"),
        SourceFile(js_file, "javascript", "matplotlib web_backend/js/mpl.js"),
    ]


def source_for_path(path: Path) -> SourceFile:
    if not path.is_file():
        raise InklingError(f"{path} is not a file")
    return SourceFile(path, lsp_language_id_for_path(str(path)), str(path))


# -- how the person types --------------------------------------------------------------------


@dataclass(frozen=True)
class TypingStyle:
    key_ms: tuple[int, int] = (80, 300)
    key_median_ms: int = 150
    pause_ms: tuple[int, int] = (1000, 3000)
    pause_chance_key: float = 0.03
    """Chance of a pause before typing a character in the middle of a line."""
    pause_chance_line_end: float = 0.3
    """Chance of a pause after finishing a line, before Enter."""
    think_ms: tuple[int, int] = (400, 900)
    """Before a cursor jump (finding the place) and before typing after it."""
    typo_chance: float = 0.04
    retype_chance: float = 0.1
    """At a line end: erase the last 2-6 characters and type them again."""
    start_ms: int = 1000
    final_pause_ms: int = 3000


@dataclass(frozen=True)
class SessionPlan:
    lines: int = 16
    """Lines of the stretch that is typed."""
    jumps: int = 2
    """Other holes visited (a jump there, one line typed, a jump back)."""
    paste_lines: int = 4
    file_lines: int = 300


QUICK_PLAN = SessionPlan(lines=3, jumps=1, paste_lines=2)


def generate_session(
    source: SourceFile,
    *,
    seed: int,
    plan: SessionPlan,
    style: TypingStyle | None = None,
    uri: str | None = None,
) -> Session:
    """A seeded session over the first `plan.file_lines` lines of `source`.

    The document is named `uri`, by default a path under no workspace
    (file:///bench/NAME), so that the server finds no project around it."""
    try:
        raw = source.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InklingError(f"cannot read {source.path}: {exc}") from exc
    lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")[: plan.file_lines]
    if lines[-1] != "":
        lines.append("")  # the window ends with a newline
    rng = random.Random(f"{seed}:{source.label}:{plan}")
    stretch = _choose_stretch(lines, plan, rng, source)
    remotes = _choose_remote_lines(lines, range(stretch - 3, stretch + plan.lines + 3), plan.jumps, rng)
    typist = _Typist(lines, stretch, remotes, rng, style or TypingStyle())
    typist.cut_holes(plan.lines)
    initial_text = typist.text()
    typist.play(plan)
    final_text = typist.text()
    if final_text != "\n".join(lines):  # the generator's own invariant
        raise AssertionError(f"session for {source.label} does not rebuild the file")
    name = f"{source.language_id}-{source.path.name}"
    session = Session(
        name=name,
        language_id=source.language_id,
        uri=uri or f"file:///bench/{source.path.name}",
        source=f"{source.label}, lines 1-{len(lines) - 1}",
        seed=seed,
        initial_text=initial_text,
        final_text=final_text,
        events=tuple(typist.events),
        end_ms=typist.t + typist.style.final_pause_ms,
    )
    session.check()
    return session


def _choose_stretch(lines: list[str], plan: SessionPlan, rng: random.Random, source: SourceFile) -> int:
    last = len(lines) - 1 - plan.lines
    first = max(1, len(lines) // 2)
    candidates = [i for i in range(first, last) if len(lines[i].strip()) >= 6]
    if plan.lines < 1 or not candidates:
        raise InklingError(f"{source.label} is too short for a session of {plan.lines} typed lines")
    return rng.choice(candidates)


def _choose_remote_lines(lines: list[str], avoid: range, count: int, rng: random.Random) -> list[int]:
    """Single lines away from the stretch and from each other, worth typing."""
    candidates = [i for i in range(2, len(lines) - 1) if 8 <= len(lines[i].strip()) <= 70 and i not in avoid]
    chosen: list[int] = []
    rng.shuffle(candidates)
    for line in candidates:
        if len(chosen) == count:
            break
        if all(abs(line - other) >= 3 for other in chosen):
            chosen.append(line)
    return sorted(chosen)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


class _Typist:
    """The document as lines (None: not typed yet) and a clock; emits events."""

    def __init__(
        self,
        lines: list[str],
        stretch: int,
        remotes: list[int],
        rng: random.Random,
        style: TypingStyle,
    ) -> None:
        self.lines = lines
        self.stretch = stretch
        self.remotes = remotes
        self.rng = rng
        self.style = style
        self.content: list[str | None] = list(lines)
        self.events: list[Event] = []
        self.t = style.start_ms - style.key_ms[0]
        """The first key comes about `start_ms` after the document opens."""
        self.line = stretch

    def text(self) -> str:
        return "\n".join(c for c in self.content if c is not None)

    def offset(self, line: int, column: int) -> int:
        return sum(len(c) + 1 for c in self.content[:line] if c is not None) + column

    def _end_of(self, line: int) -> int:
        current = self.content[line]
        assert current is not None
        return self.offset(line, len(current))

    # -- time -------------------------------------------------------------------

    def key_delay(self) -> int:
        low, high = self.style.key_ms
        value = self.rng.lognormvariate(math.log(self.style.key_median_ms), 0.35)
        return round(min(max(value, low), high))

    def maybe_pause(self, chance: float) -> int:
        if self.rng.random() < chance:
            return self.rng.randint(*self.style.pause_ms)
        return self.key_delay()

    def _emit(self, delay: int, kind: EventKind, offset: int, delete: int, insert: str, cursor: int) -> None:
        self.t += delay
        self.events.append(Event(self.t, kind, offset, delete, insert, cursor))

    def label_last(self, scenario: str) -> None:
        """Mark the last event as one of the whole-lines scenario's waits."""
        self.events[-1] = replace(self.events[-1], scenario=scenario)

    # -- actions -------------------------------------------------------------------

    def type_char(self, char: str, delay: int) -> None:
        current = self.content[self.line]
        assert current is not None
        at = self.offset(self.line, len(current))
        self.content[self.line] = current + char
        self._emit(delay, "type", at, 0, char, at + 1)

    def backspace(self) -> None:
        current = self.content[self.line]
        assert current
        self.content[self.line] = current[:-1]
        at = self.offset(self.line, len(current) - 1)
        self._emit(self.key_delay(), "backspace", at, 1, "", at)

    def newline(self, new_line: int, delay: int) -> None:
        """Enter at the end of the current line; the editor indents the new one."""
        at = self._end_of(self.line)
        indent = _indent(self.lines[new_line])
        self.content[new_line] = indent
        self.line = new_line
        self._emit(delay, "newline", at, 0, "\n" + indent, at + 1 + len(indent))

    def paste(self, first: int, count: int, delay: int) -> None:
        current = self.content[first]
        assert current is not None and first == self.line
        at = self.offset(first, len(current))
        block = self.lines[first][len(current) :]
        for line in range(first + 1, first + count):
            block += "\n" + self.lines[line]
        for line in range(first, first + count):
            self.content[line] = self.lines[line]
        self.line = first + count - 1
        self._emit(delay, "paste", at, 0, block, at + len(block))

    def jump(self, line: int) -> None:
        self.line = line
        self._emit(
            self.rng.randint(*self.style.think_ms), "jump", self._end_of(line), 0, "", self._end_of(line)
        )

    def type_rest(self, line: int) -> None:
        """Type what is missing of `line`, with typos that are noticed and fixed."""
        current = self.content[line]
        target = self.lines[line]
        assert current is not None and target.startswith(current)
        chars = target[len(current) :]
        for k, char in enumerate(chars):
            delay = self.maybe_pause(self.style.pause_chance_key) if k else self.key_delay()
            if char.isalpha() and self.rng.random() < self.style.typo_chance:
                wrong = self.rng.choice([c for c in string.ascii_lowercase if c != char.lower()])
                self.type_char(wrong, delay)
                noticed_after = chars[k + 1 : k + 1 + self.rng.randint(0, 2)]
                for more in noticed_after:
                    self.type_char(more, self.key_delay())
                for _ in range(1 + len(noticed_after)):
                    self.backspace()
                delay = self.key_delay()
            self.type_char(char, delay)

    def _erased(self) -> bool:
        return any(e.kind == "backspace" for e in self.events)

    def maybe_retype_end(self, *, force: bool = False) -> None:
        """Sometimes erase the end of the line and type it again (always, if `force`)."""
        current = self.content[self.line]
        assert current is not None
        typed = len(current) - len(_indent(current))
        if typed < 2 or (not force and (typed < 4 or self.rng.random() >= self.style.retype_chance)):
            return
        erase = self.rng.randint(2, min(6, typed))
        tail = current[-erase:]
        for _ in range(erase):
            self.backspace()
        for char in tail:
            self.type_char(char, self.key_delay())

    # -- the whole session ---------------------------------------------------------------

    def cut_holes(self, stretch_lines: int) -> None:
        """The state before the first key: Enter was just pressed where the stretch starts."""
        for line in range(self.stretch + 1, self.stretch + stretch_lines):
            self.content[line] = None
        self.content[self.stretch] = _indent(self.lines[self.stretch])
        for line in self.remotes:
            self.content[line] = None

    def play(self, plan: SessionPlan) -> None:
        stretch, end = self.stretch, self.stretch + plan.lines
        jump_after = {
            stretch + (j + 1) * plan.lines // (len(self.remotes) + 1) - 1: remote
            for j, remote in enumerate(self.remotes)
        }
        paste_at, paste_count = -1, 0
        if plan.paste_lines >= 2 and plan.lines > plan.paste_lines:
            paste_at = stretch + 1 + (plan.lines - 1 - plan.paste_lines) // 2
            paste_count = plan.paste_lines
        line = stretch
        while line < end:
            if line != stretch:
                self.newline(line, self.maybe_pause(self.style.pause_chance_line_end))
            if line == paste_at:  # copied from elsewhere: a pause, then Ctrl+V
                self.paste(line, paste_count, self.rng.randint(*self.style.pause_ms))
                line += paste_count - 1
            else:
                self.type_rest(line)
            self.maybe_retype_end(force=not self._erased())  # every session has a deletion
            for after in sorted(a for a in jump_after if a <= line):  # a paste may pass a jump point
                self.visit(jump_after.pop(after))
            line += 1

    def visit(self, remote: int) -> None:
        back = self.line
        self.jump(remote - 1)
        self.newline(remote, self.rng.randint(*self.style.think_ms))
        self.type_rest(remote)
        self.jump(back)


# -- whole lines: a file just opened, a jump, Enter -------------------------------------------

WAIT_MS = 3000
"""How long the whole-lines user waits for ghost text before moving on."""
WHOLE_FILE_LINES = 400
JUMP_DISTANCE = 30
"""Least lines between the place asked at opening and the place jumped to."""


def generate_whole_line_session(
    source: SourceFile,
    *,
    seed: int,
    style: TypingStyle | None = None,
    uri: str | None = None,
    wait_ms: int = WAIT_MS,
) -> Session:
    """The paths where a user waits for a whole line, in one file (its first 400 lines).

    The file is opened and asked at once ("open") at a line of a function body
    that is missing: on a blank line after its indentation, or (every other
    seed) at the end of the line's first half; the user waits. Then the cursor
    jumps to another function's missing line ("jump") and waits, types that
    line with its typos (mid-line keystrokes), presses Enter where the next
    line is missing too ("enter") and waits again."""
    try:
        raw = source.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InklingError(f"cannot read {source.path}: {exc}") from exc
    whole = raw.replace("\r\n", "\n").replace("\r", "\n")
    lines = whole.split("\n")[:WHOLE_FILE_LINES]
    if lines[-1] != "":
        lines.append("")
    rng = random.Random(f"whole-lines:{seed}:{source.label}")
    body = _body_lines(whole, lines, source.language_id)
    pairs = [b for b in body if b + 1 in body and _indent(lines[b]) == _indent(lines[b + 1])]
    opening = [a for a in body if any(abs(a - b) >= JUMP_DISTANCE for b in pairs)]
    if not opening:
        raise InklingError(f"{source.label} has too few function bodies for a whole-lines session")
    asked = rng.choice(opening)
    jumped = rng.choice([b for b in pairs if abs(asked - b) >= JUMP_DISTANCE])
    typist = _Typist(lines, asked, [], rng, style or TypingStyle())
    at_line_end = seed % 2 == 1
    typist.content[asked] = _first_half(lines[asked]) if at_line_end else _indent(lines[asked])
    typist.content[jumped] = _indent(lines[jumped])
    typist.content[jumped + 1] = None
    initial_text = typist.text()
    typist.t = 0
    typist.line = asked
    end = typist._end_of(asked)
    typist._emit(0, "jump", end, 0, "", end)
    typist.label_last("open")
    typist.t += wait_ms
    typist.jump(jumped)
    typist.label_last("jump")
    typist.t += wait_ms
    typist.type_rest(jumped)
    typist.newline(jumped + 1, typist.key_delay())
    typist.label_last("enter")
    name = f"{source.language_id}-{source.path.name}"
    session = Session(
        name=name,
        language_id=source.language_id,
        uri=uri or f"file:///bench/{source.path.name}",
        source=f"{source.label}, lines 1-{len(lines) - 1}",
        seed=seed,
        initial_text=initial_text,
        final_text=typist.text(),
        events=tuple(typist.events),
        end_ms=typist.t + wait_ms,
    )
    session.check()
    return session


_NOT_CODE = ("#", "//", "/*", "*", '"', "'", "@")


def _body_lines(whole: str, lines: list[str], language_id: str) -> set[int]:
    """Lines worth asking for: statements inside a body (indented, every token on the line,
    no comment: `holes.tokens.clean_lines`; not a continuation), of a length a model could
    write."""
    from lsp_server.holes.parsed import parse_text
    from lsp_server.holes.tokens import clean_lines

    parsed = parse_text(language_id, whole)
    clean = set(clean_lines(parsed)) if parsed is not None else set(range(len(lines)))
    found = set()
    for i in sorted(clean):
        if not 2 <= i < len(lines) - 2:
            continue
        line, stripped = lines[i], lines[i].strip()
        previous = lines[i - 1]
        if not _indent(line) or not 8 <= len(stripped) <= 70 or stripped.startswith(_NOT_CODE):
            continue
        if not previous.strip() or len(_indent(previous)) > len(_indent(line)):
            continue  # after a blank line, or a continuation of the statement above
        if previous.rstrip().endswith(("\\", ",", "(", "[", "{")) and len(_indent(previous)) == len(
            _indent(line)
        ):
            continue
        if stripped.endswith(("(", "[", "{", ",", "\\")) or '"""' in stripped or "'''" in stripped:
            continue
        found.add(i)
    return found


def _first_half(line: str) -> str:
    """The line up to the word boundary nearest its middle (at least its first word)."""
    indent = _indent(line)
    code = line[len(indent) :]
    middle = len(code) // 2
    cuts = [
        i for i in range(1, len(code)) if (not code[i - 1].isalnum() and code[i - 1] != "_") or code[i] == " "
    ]
    cut = min(cuts, key=lambda i: abs(i - middle)) if cuts else middle
    return indent + code[:cut]


def whole_line_sources(count: int, seed: int) -> list[SourceFile]:
    """`count` Python modules of the standard library (seeded choice), long enough to hold
    two function bodies far apart."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in stdlib.glob("*.py") if not p.name.startswith(("_", "test")) and p.stat().st_size > 6000
    )
    rng = random.Random(f"whole-line-sources:{seed}")
    rng.shuffle(files)
    chosen: list[SourceFile] = []
    for path in files:
        if len(chosen) == count:
            break
        source = SourceFile(path, "python", f"Python stdlib {path.name}")
        try:
            generate_whole_line_session(source, seed=seed)
        except InklingError:
            continue
        chosen.append(source)
    return chosen
