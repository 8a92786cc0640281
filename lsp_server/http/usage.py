"""Per-user usage of the HTTP server, kept across restarts: requests, completions by
outcome, what editors said became of them (`/v1/events`), tokens.

Counts only, never code. One row per user (an API key's name, or `anonymous`
for requests without a key: addresses are not kept) and day, in SQLite
(`$INKLING_STATE/http-usage.sqlite3`, mode 600). The server adds to counters in
memory and writes them in one transaction every `FLUSH_S` seconds and when it
stops; SQLite's journal (WAL) keeps the file whole whatever happens to the
process, so a crash loses at most the last seconds' counts, never the file.
Several servers may share the file (each adds its own counts). `inkling keys
list` and `inkling keys stats` read it; so does `GET /v1/usage`.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsp_server.acceptance import state_dir
from lsp_server.errors import InklingError

if TYPE_CHECKING:  # `inkling keys` reads usage without loading the completion machinery
    from lsp_server.pipeline import Completion

log = logging.getLogger(__name__)

FILE_NAME = "http-usage.sqlite3"
FLUSH_S = 2.0
ANONYMOUS = "anonymous"
EVENT_COLUMNS = {"view": "viewed", "select": "accepted", "dismiss": "dismissed"}
"""Tabby's event types and the counters they add to."""


@dataclass
class Counts:
    requests: int = 0
    """HTTP requests answered, every endpoint and status (the refused ones too)."""
    offered: int = 0
    """Completions with text, from the model."""
    cached: int = 0
    """Completions with text, answered from the completion cache (typed into an earlier one)."""
    empty: int = 0
    skipped: int = 0
    cancelled: int = 0
    """Superseded by the same user's newer request, or the client hung up."""
    viewed: int = 0
    accepted: int = 0
    dismissed: int = 0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0

    def add(self, other: Counts) -> None:
        for name in _COLUMNS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def empty_delta(self) -> bool:
        return not any(getattr(self, name) for name in _COLUMNS)

    @property
    def shown(self) -> int:
        """Completions that gave the user text to accept."""
        return self.offered + self.cached

    @property
    def acceptance(self) -> float | None:
        """Accepted over shown completions; None until the user's editor reports any event
        (llama.vim and llama.vscode send none: for them this is unknown, not zero)."""
        if not (self.viewed or self.accepted or self.dismissed) or not self.shown:
            return None
        return self.accepted / self.shown


_COLUMNS = tuple(field.name for field in fields(Counts))


@dataclass
class UserUsage:
    user: str
    counts: Counts
    first_day: str
    last_day: str

    def as_dict(self) -> dict[str, Any]:
        counts = self.counts
        acceptance = counts.acceptance
        return {
            "user": self.user,
            "requests": counts.requests,
            "completions": {
                "shown": counts.shown,
                "offered": counts.offered,
                "cached": counts.cached,
                "empty": counts.empty,
                "skipped": counts.skipped,
                "cancelled": counts.cancelled,
            },
            "events": {"view": counts.viewed, "select": counts.accepted, "dismiss": counts.dismissed},
            "acceptance_rate": None if acceptance is None else round(acceptance, 4),
            "tokens": {
                "prompt": counts.prompt_tokens,
                "reused": counts.reused_tokens,
                "generated": counts.generated_tokens,
            },
            "first_day": self.first_day,
            "last_day": self.last_day,
        }


def today() -> str:
    return datetime.datetime.now(datetime.UTC).date().isoformat()


class UsageLog:
    """The server's side: counts in memory, written every `flush_s` seconds and on close."""

    def __init__(self, path: Path | None = None, *, flush_s: float = FLUSH_S) -> None:
        self.path = path or state_dir() / FILE_NAME
        self.flush_s = flush_s
        self._pending: dict[tuple[str, str], Counts] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with _connect(self.path, create=True):
            pass  # made (and its permissions set) now: a server that cannot keep usage says so at start

    def start(self) -> None:
        """Write the counts in the background until `close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="inkling-usage", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self._flush_logged()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._flush_logged()

    # -- counting (any thread) ----------------------------------------------------

    def count(self, user: str, **deltas: int) -> None:
        with self._lock:
            counts = self._pending.setdefault((user or ANONYMOUS, today()), Counts())
            for name, value in deltas.items():
                setattr(counts, name, getattr(counts, name) + value)

    def completed(self, user: str, completion: Completion) -> None:
        outcome = completion.status.value
        deltas = {outcome: 1} if outcome in _COLUMNS else {}
        generation = completion.generation
        if generation is not None and outcome != "cached":
            deltas |= {
                "prompt_tokens": generation.prompt_tokens,
                "reused_tokens": generation.reused_tokens,
                "generated_tokens": generation.generated_tokens,
            }
        self.count(user, **deltas)

    def event(self, user: str, kind: str) -> None:
        self.count(user, **{EVENT_COLUMNS[kind]: 1})

    # -- writing ----------------------------------------------------------------------

    def flush(self) -> None:
        """Add the counts so far to the file, in one transaction."""
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            rows = [
                (user, day, counts) for (user, day), counts in pending.items() if not counts.empty_delta()
            ]
            if not rows:
                return
            try:
                with _connect(self.path, create=True) as db, db:
                    db.executemany(_UPSERT, [(user, day, *astuple(counts)) for user, day, counts in rows])
            except sqlite3.Error:
                with self._lock:  # kept for the next try
                    for user, day, counts in rows:
                        self._pending.setdefault((user, day), Counts()).add(counts)
                raise

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except sqlite3.Error as exc:
            log.warning("could not write the usage counts to %s: %s", self.path, exc)

    # -- reading ------------------------------------------------------------------------

    def read(self, users: Iterable[str] | None = None, *, since: str = "") -> list[UserUsage]:
        """The file's counts plus those not written yet."""
        found = read_usage(self.path, users, since=since)
        wanted = None if users is None else set(users)
        with self._lock:
            pending = [(key, Counts(**asdict(c))) for key, c in self._pending.items()]
        by_user = {usage.user: usage for usage in found}
        for (user, day), counts in pending:
            if (wanted is not None and user not in wanted) or day < since:
                continue
            usage = by_user.setdefault(user, UserUsage(user, Counts(), day, day))
            usage.counts.add(counts)
            usage.first_day, usage.last_day = min(usage.first_day, day), max(usage.last_day, day)
        return sorted(by_user.values(), key=lambda usage: usage.user)


def read_usage(
    path: Path | None = None, users: Iterable[str] | None = None, *, since: str = ""
) -> list[UserUsage]:
    """Every user's totals (or `users`'), from day `since` (YYYY-MM-DD) on; [] without a file."""
    path = path or state_dir() / FILE_NAME
    if not path.exists():
        return []
    sums = ", ".join(f"SUM({name})" for name in _COLUMNS)
    query = f"SELECT user, MIN(day), MAX(day), {sums} FROM usage WHERE day >= ?"
    arguments: list[str] = [since]
    if users is not None:
        names = list(users)
        if not names:
            return []
        query += f" AND user IN ({', '.join('?' for _ in names)})"
        arguments += names
    query += " GROUP BY user ORDER BY user"
    try:
        with _connect(path, create=False) as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'usage'").fetchone():
                return []
            rows = db.execute(query, arguments).fetchall()
    except sqlite3.Error as exc:
        raise InklingError(f"cannot read the usage counts in {path}: {exc}") from exc
    return [
        UserUsage(row[0], Counts(*(int(value or 0) for value in row[3:])), row[1], row[2]) for row in rows
    ]


def astuple(counts: Counts) -> tuple[int, ...]:
    return tuple(getattr(counts, name) for name in _COLUMNS)


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (user TEXT NOT NULL, day TEXT NOT NULL, "
    + ", ".join(f"{name} INTEGER NOT NULL DEFAULT 0" for name in _COLUMNS)
    + ", PRIMARY KEY (user, day))"
)
_UPSERT = (
    f"INSERT INTO usage (user, day, {', '.join(_COLUMNS)}) "
    f"VALUES (?, ?, {', '.join('?' for _ in _COLUMNS)}) "
    "ON CONFLICT (user, day) DO UPDATE SET "
    + ", ".join(f"{name} = {name} + excluded.{name}" for name in _COLUMNS)
)


@contextlib.contextmanager
def _connect(path: Path, *, create: bool) -> Iterator[sqlite3.Connection]:
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'ro'}"
    db = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        if create:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
        yield db
    finally:
        db.close()
