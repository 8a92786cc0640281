"""Opt-in feedback: each offered completion, the code around it and what became of it.

With `recordFeedback` on, the LSP front end tells a `FeedbackTracker` about
every item it offers, every edit to a document with an offer pending, every
accept command and every close. The tracker decides each offer's outcome from
what the user does next:

* accepted: the editor ran the item's command (`how: "command"`), or the user
  typed the whole completion out by hand (`how: "typed"`);
* rejected: the user typed other text at that place, a later request at the
  same place got another completion, the user edited or moved elsewhere, or the
  document was closed, before typing any of it;
* partial: the user typed the first `matched_chars` characters of it, then
  went on differently (or it was replaced there).

An answer with alternatives (`inlineSuggestions`) is one offer, its first
item's: taking an alternative (its command) settles it as rejected, or
partial by the text they share, with reason "alternative" and the
alternative as what the user typed instead, complete: the preference pair
(alternative chosen over the first item) that a rejection with typing gives.

After an offer is rejected or partial the tracker keeps watching the place
until the user has typed as many lines as the completion had (or leaves), and
stores what they typed instead (`typed`, `typed_complete`): that is the
preference pair's chosen side. Typing along a completion is the same offer,
however many times the editor asks again (the completion cache answers with
the rest of it, and that answer is counted as the same offer).

Records go to a SQLite database in Inkling's state directory
(`feedback.sqlite3`, WAL mode: a crash loses at most the records not yet
committed, never the file), written on a thread of their own so that no
request waits for the disk. Every text is scrubbed of secrets and personal
data (`lsp_server.scrub`) before it is written; the file name is kept without
its folder. Past `feedbackMaxMib` the oldest records are deleted. Nothing is
sent anywhere: `inkling feedback` reads, exports and clears the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import queue
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsp_server.acceptance import state_dir
from lsp_server.prompt import CHARS_PER_TOKEN
from lsp_server.scrub import scrub

log = logging.getLogger(__name__)

FILE_NAME = "feedback.sqlite3"
SCHEMA_VERSION = 1
OUTCOMES = ("accepted", "rejected", "partial")
MAX_PENDING_PER_DOCUMENT = 64
"""Offers watched per document at once (the oldest is settled first)."""
MAX_PENDING = 512
MAX_TYPED_CHARS = 4000
"""What the user typed instead is kept up to this long."""
_FINGERPRINT_BYTES = 1 << 20

COLUMNS: tuple[tuple[str, str], ...] = (
    ("item", "TEXT UNIQUE NOT NULL"),
    ("offered_at", "TEXT NOT NULL"),
    ("settled_at", "TEXT NOT NULL"),
    ("outcome", "TEXT NOT NULL"),
    ("how", "TEXT NOT NULL"),
    ("reason", "TEXT NOT NULL"),
    ("matched_chars", "INTEGER NOT NULL"),
    ("language", "TEXT NOT NULL"),
    ("kind", "TEXT NOT NULL"),
    ("mode", "TEXT NOT NULL"),
    ("client", "TEXT NOT NULL"),
    ("file", "TEXT NOT NULL"),
    ("model", "TEXT NOT NULL"),
    ("model_hash", "TEXT NOT NULL"),
    ("template", "TEXT NOT NULL"),
    ("prompt_order", "TEXT NOT NULL"),
    ("settings", "TEXT NOT NULL"),
    ("prefix", "TEXT NOT NULL"),
    ("suffix", "TEXT NOT NULL"),
    ("completion", "TEXT NOT NULL"),
    ("typed", "TEXT NOT NULL"),
    ("typed_complete", "INTEGER NOT NULL"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)
TEXT_COLUMNS = ("prefix", "suffix", "completion", "typed", "file")
"""Scrubbed before they are written."""


def feedback_path() -> Path:
    return state_dir() / FILE_NAME


# -- the model's identity -------------------------------------------------------------------


_fingerprints: dict[tuple[str, int, int], str] = {}


def model_fingerprint(path: str | Path, lora: str | Path | None = None) -> str:
    """A cheap identity of a model file (and the LoRA file it applies): SHA-256 of its size
    and its first and last MiB, 16 hex digits; '' for a file that cannot be read.
    Different files are told apart without reading 250 MB on the first offer."""
    parts = []
    for item in (path, lora):
        if not item:
            continue
        try:
            info = os.stat(item)
        except OSError:
            return ""
        key = (str(item), info.st_size, info.st_mtime_ns)
        if key not in _fingerprints:
            digest = hashlib.sha256(str(info.st_size).encode())
            try:
                with open(item, "rb") as handle:
                    digest.update(handle.read(_FINGERPRINT_BYTES))
                    handle.seek(max(0, info.st_size - _FINGERPRINT_BYTES))
                    digest.update(handle.read(_FINGERPRINT_BYTES))
            except OSError:
                return ""
            _fingerprints[key] = digest.hexdigest()
        parts.append(_fingerprints[key])
    return hashlib.sha256("+".join(parts).encode()).hexdigest()[:16] if parts else ""


# -- the store ------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class FeedbackStore:
    """The SQLite database of settled offers. One connection, used from one thread."""

    def __init__(self, path: Path | None = None, max_bytes: int = 64 << 20) -> None:
        self.path = path or feedback_path()
        self.max_bytes = max_bytes
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)  # code: readable by its owner only
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash keeps the file whole
            db.execute("PRAGMA journal_size_limit=8388608")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                db.close()
                raise sqlite3.DatabaseError(
                    f"{self.path} has feedback schema {version}, this Inkling knows {SCHEMA_VERSION}"
                )
            columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
            db.execute(f"CREATE TABLE IF NOT EXISTS feedback (id INTEGER PRIMARY KEY, {columns})")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def add(self, records: Sequence[dict[str, Any]], accepted_items: Sequence[str] = ()) -> None:
        """Write settled records (and later accepts of already written ones) in one transaction."""
        db = self.db
        placeholders = ", ".join("?" for _ in COLUMN_NAMES)
        with _transaction(db):
            db.executemany(
                f"INSERT OR REPLACE INTO feedback ({', '.join(COLUMN_NAMES)}) VALUES ({placeholders})",
                [tuple(record[name] for name in COLUMN_NAMES) for record in records],
            )
            db.executemany(
                "UPDATE feedback SET outcome = 'accepted', how = 'command', reason = 'accepted', "
                "matched_chars = length(completion), typed = completion, typed_complete = 1 WHERE item = ?",
                [(item,) for item in accepted_items],
            )
        self._rotate()

    def used_bytes(self) -> int:
        db = self.db
        pages = (
            db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
        )
        return int(pages * db.execute("PRAGMA page_size").fetchone()[0])

    def _rotate(self) -> None:
        """Past the size limit, delete the oldest quarter of the records, as often as needed
        (freed pages are reused, so the file stops growing)."""
        for _ in range(8):
            if self.used_bytes() <= self.max_bytes:
                return
            db = self.db
            count = db.execute("SELECT count(*) FROM feedback").fetchone()[0]
            if count == 0:
                return
            with _transaction(db):
                db.execute(
                    "DELETE FROM feedback WHERE id IN (SELECT id FROM feedback ORDER BY id LIMIT ?)",
                    (max(1, count // 4),),
                )

    def records(self, outcome: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record, oldest first (`settings` as a mapping, `typed_complete` a bool)."""
        query = f"SELECT id, {', '.join(COLUMN_NAMES)} FROM feedback"
        args: tuple[Any, ...] = ()
        if outcome:
            query += " WHERE outcome = ?"
            args = (outcome,)
        for row in self.db.execute(query + " ORDER BY id", args):
            record = dict(zip(("id", *COLUMN_NAMES), row, strict=True))
            record["settings"] = json.loads(record["settings"] or "{}")
            record["typed_complete"] = bool(record["typed_complete"])
            yield record

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM feedback").fetchone()[0])

    def counts(self) -> dict[str, Any]:
        """Records per outcome, overall and per language, model and editor."""
        db = self.db
        result: dict[str, Any] = {"total": dict.fromkeys(OUTCOMES, 0)}
        for outcome, number in db.execute("SELECT outcome, count(*) FROM feedback GROUP BY outcome"):
            result["total"][outcome] = number
        for group, column in (
            ("byLanguage", "language"),
            ("byModel", "model || ' ' || model_hash"),
            ("byClient", "client"),
        ):
            table: dict[str, dict[str, int]] = {}
            for key, outcome, number in db.execute(
                f"SELECT {column}, outcome, count(*) FROM feedback GROUP BY 1, 2 ORDER BY 1"
            ):
                table.setdefault(str(key), dict.fromkeys(OUTCOMES, 0))[outcome] = number
            result[group] = table
        return result

    def clear(self) -> int:
        """Delete every record and give the space back; returns how many there were."""
        db = self.db
        count = self.count()
        with _transaction(db):
            db.execute("DELETE FROM feedback")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count


class _transaction:  # noqa: N801 - reads as the statement it wraps
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


class FeedbackWriter:
    """Writes settled records on a thread of its own; requests never wait for the disk.

    A failure to write is logged once and the records are dropped (never retried
    forever, never raised into a request)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.max_bytes = 64 << 20
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failed = False
        self.written = 0

    def put(self, record: dict[str, Any]) -> None:
        self._send(("record", record))

    def mark_accepted(self, item: str) -> None:
        self._send(("accepted", item))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything sent so far is written (False on timeout)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._send(("flush", done))
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(("stop", None))
            thread.join(timeout)

    def _send(self, message: tuple[str, Any]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inkling-feedback", daemon=True)
                self._thread.start()
        self._queue.put(message)

    def _run(self) -> None:
        store = FeedbackStore(self.path, self.max_bytes)
        try:
            while True:
                messages = [self._queue.get()]
                while True:  # what has piled up goes into one transaction
                    try:
                        messages.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                records = [m[1] for m in messages if m[0] == "record"]
                accepted = [m[1] for m in messages if m[0] == "accepted"]
                if records or accepted:
                    store.max_bytes = self.max_bytes
                    try:
                        store.add(records, accepted)
                        self.written += len(records)
                    except (sqlite3.Error, OSError) as exc:
                        if not self._failed:
                            self._failed = True
                            log.warning("cannot write feedback to %s: %s", store.path, exc)
                for kind, value in messages:
                    if kind == "flush":
                        value.set()
                if any(kind == "stop" for kind, _ in messages):
                    return
        finally:
            store.close()


# -- deciding outcomes ----------------------------------------------------------------------


@dataclass
class OfferContext:
    """What the front end knows about an offered item, besides its text and place."""

    language: str
    kind: str
    """inline (ghost text) | menu (a completion item)."""
    mode: str
    """inline | block (the server's completion mode)."""
    client: str
    file: str
    model: str
    model_hash: str
    template: str
    prompt_order: str
    settings: dict[str, Any]
    prefix_tokens: int
    suffix_tokens: int


@dataclass
class _Offer:
    item: str
    uri: str
    offset: int
    after_len: int
    prefix: str
    """The end of the text before the cursor, as much as the prompt held (unscrubbed: in memory)."""
    suffix: str
    completion: str
    context: OfferContext
    offered_at: str
    serial: int
    aliases: list[str] = field(default_factory=list)
    alternatives: dict[str, str] = field(default_factory=dict)
    """Item id -> the text an alternative of the same answer inserts at `offset`."""
    chosen: str | None = None
    """The alternative the user took instead (its command ran)."""
    typed: str = ""
    shown: bool = True
    outcome: str = ""
    how: str = ""
    reason: str = ""
    matched: int = 0

    def typed_in(self, text: str) -> str | None:
        """What is now between the text before and after the place; None when an edit
        reached beyond it (the user works elsewhere, or changed the code around it)."""
        end = len(text) - self.after_len
        if end < self.offset:
            return None
        if not text.startswith(self.prefix, self.offset - len(self.prefix)):
            return None
        if not text.startswith(self.suffix, end):
            return None
        return text[self.offset : end]


def prompt_windows(text: str, offset: int, prefix_tokens: int, suffix_tokens: int) -> tuple[str, str]:
    """The text before and after `offset` that a prompt with these budgets holds, about:
    whole lines, `CHARS_PER_TOKEN` characters a token (what training needs, no more)."""
    before, after = text[:offset], text[offset:]
    keep = int(prefix_tokens * CHARS_PER_TOKEN)
    if len(before) > keep:
        cut = before.find("\n", len(before) - keep)
        before = before[cut + 1 :] if cut >= 0 else before[len(before) - keep :]
    keep = int(suffix_tokens * CHARS_PER_TOKEN)
    if len(after) > keep:
        cut = after.rfind("\n", 0, keep)
        after = after[: cut + 1] if cut >= 0 else after[:keep]
    return before, after


def typed_extent(typed: str, completion: str, *, left: bool = False) -> tuple[str, bool]:
    """What the user typed at the place, as far as the completion reached: as many lines as
    it has (the line break that starts the next one excluded). True when that is all there:
    the next line was begun, or (`left`) the user typed as many lines and went elsewhere."""
    lines = completion.count("\n")
    position = -1
    for _ in range(lines + 1):
        position = typed.find("\n", position + 1)
        if position < 0:
            whole = len(typed) >= MAX_TYPED_CHARS or (left and bool(typed) and typed.count("\n") == lines)
            return typed[:MAX_TYPED_CHARS], whole
    return typed[:position][:MAX_TYPED_CHARS], True


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class FeedbackTracker:
    """Pending offers per document, settled from edits, accepts, later requests and closes.

    Called from the front end's handlers; thread-safe. Settled offers go to `sink`
    (a `FeedbackWriter` in the server; a list in tests)."""

    def __init__(
        self,
        sink: FeedbackWriter | None = None,
        *,
        scrubber: Callable[[str], str] = scrub,
        clock: Callable[[], str] = _now,
    ) -> None:
        self.sink = sink or FeedbackWriter()
        self.scrubber = scrubber
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, list[_Offer]] = {}
        self._items: dict[str, _Offer] = {}
        self._settled: OrderedDict[str, str] = OrderedDict()
        """Item id (aliases included) -> the record's item, for accepts that come late ("" for
        an alternative's id: taking it does not make the first item accepted)."""
        self._serial = itertools.count()

    def watching(self, uri: str) -> bool:
        return bool(self._pending.get(uri))

    @property
    def pending(self) -> int:
        return sum(len(offers) for offers in self._pending.values())

    def offered(
        self,
        item: str,
        uri: str,
        text: str,
        offset: int,
        completion: str,
        context: OfferContext,
        alternatives: Mapping[str, str] | None = None,
    ) -> None:
        """An item was sent to the editor: `completion` to insert at `offset` of `text`;
        `alternatives`: the ids and texts of the same answer's other items."""
        if not completion:
            return
        with self._lock:
            same: _Offer | None = None
            for offer in list(self._pending.get(uri, ())):
                typed = offer.typed_in(text)
                if typed is None:
                    self._finish(offer, "moved")
                    continue
                if self._observe(offer, typed):
                    continue
                here = offset == offer.offset + len(typed)
                if offer.shown and here and completion == offer.completion[len(typed) :]:
                    same = offer  # the rest of the same completion, offered again
                    continue
                if offer.shown:
                    self._hide(offer, "replaced" if here else "moved")
                if not offer.offset <= offset <= offer.offset + len(typed):
                    self._finish(offer, "moved")  # the user works elsewhere now
            if same is not None:
                same.aliases.append(item)
                self._items[item] = same
                typed_here = text[same.offset : offset]
                self._add_alternatives(same, {k: typed_here + v for k, v in (alternatives or {}).items()})
                return
            prefix, suffix = prompt_windows(text, offset, context.prefix_tokens, context.suffix_tokens)
            offer = _Offer(
                item=item,
                uri=uri,
                offset=offset,
                after_len=len(text) - offset,
                prefix=prefix,
                suffix=suffix,
                completion=completion,
                context=context,
                offered_at=self.clock(),
                serial=next(self._serial),
            )
            offers = self._pending.setdefault(uri, [])
            offers.append(offer)
            self._items[item] = offer
            self._add_alternatives(offer, alternatives or {})
            if len(offers) > MAX_PENDING_PER_DOCUMENT:
                self._finish(offers[0], "moved")
            if sum(map(len, self._pending.values())) > MAX_PENDING:
                oldest = min((o for each in self._pending.values() for o in each), key=lambda o: o.serial)
                self._finish(oldest, "moved")

    def changed(self, uri: str, text: str) -> None:
        """The document's text after an edit."""
        with self._lock:
            for offer in list(self._pending.get(uri, ())):
                typed = offer.typed_in(text)
                if typed is None:
                    self._finish(offer, "moved")
                else:
                    self._observe(offer, typed)

    def accepted(self, item: Any) -> bool:
        """The editor ran an item's command; False for an item never offered here."""
        if not isinstance(item, str):
            return False
        with self._lock:
            offer = self._items.get(item)
            if offer is not None and item in offer.alternatives:
                self._take_alternative(offer, offer.alternatives[item])
                return True
            if offer is not None:
                offer.shown = False
                offer.outcome, offer.how, offer.reason = "accepted", "command", "accepted"
                offer.matched, offer.typed = len(offer.completion), offer.completion
                self._finish(offer, "accepted")
                return True
            settled = self._settled.get(item)
        if settled is None:
            return False
        if settled:
            self.sink.mark_accepted(settled)  # settled before the command came (the edit came first)
        return True

    def closed(self, uri: str, reason: str = "closed") -> None:
        with self._lock:
            for offer in list(self._pending.get(uri, ())):
                self._finish(offer, reason)

    def settle_all(self, reason: str = "ended") -> None:
        for uri in list(self._pending):
            self.closed(uri, reason)

    def discard(self) -> None:
        """Forget pending offers without writing them (feedback was turned off)."""
        with self._lock:
            self._pending.clear()
            self._items.clear()

    # -- inside the lock --------------------------------------------------------------------

    def _add_alternatives(self, offer: _Offer, alternatives: Mapping[str, str]) -> None:
        for item, text in alternatives.items():
            if text and text != offer.completion:
                offer.alternatives[item] = text
                self._items[item] = offer

    def _take_alternative(self, offer: _Offer, text: str) -> None:
        """The user took another item of the answer: the first was passed over for it."""
        offer.typed = text
        if offer.shown:
            self._hide(offer, "alternative")
        offer.how, offer.reason, offer.chosen = "command", "alternative", text
        self._finish(offer, "alternative")

    def _observe(self, offer: _Offer, typed: str) -> bool:
        """Update an offer with what is typed at its place; True when that settled it."""
        offer.typed = typed
        if offer.shown:
            if typed.startswith(offer.completion):
                offer.shown = False
                offer.outcome, offer.how, offer.reason = "accepted", "typed", "typed"
                offer.matched = len(offer.completion)
                self._finish(offer, "typed")
                return True
            if offer.completion.startswith(typed):
                return False  # typing along it
            self._hide(offer, "diverged")
        _, complete = typed_extent(typed, offer.completion)
        if complete:
            self._finish(offer, offer.reason)
            return True
        return False

    def _hide(self, offer: _Offer, reason: str) -> None:
        """The completion is no longer on screen: its outcome is decided (what was typed is
        still watched)."""
        offer.shown = False
        offer.matched = _common_prefix(offer.typed, offer.completion)
        offer.outcome = "partial" if offer.matched else "rejected"
        offer.reason = reason

    def _finish(self, offer: _Offer, reason: str) -> None:
        if offer.shown:
            self._hide(offer, reason)
        offers = self._pending.get(offer.uri, [])
        if offer in offers:
            offers.remove(offer)
        if not offers:
            self._pending.pop(offer.uri, None)
        for item in (offer.item, *offer.aliases):
            self._items.pop(item, None)
            self._settled[item] = offer.item
        for item in offer.alternatives:
            self._items.pop(item, None)
            self._settled[item] = ""  # taken after it settled: its record stands as it is
        while len(self._settled) > MAX_PENDING * 2:
            self._settled.popitem(last=False)
        if offer.outcome == "accepted":
            typed, complete = offer.completion, True
        elif offer.chosen is not None:
            typed, complete = offer.chosen[:MAX_TYPED_CHARS], True
        else:
            typed, complete = typed_extent(offer.typed, offer.completion, left=reason == "moved")
        context = offer.context
        record: dict[str, Any] = {
            "item": offer.item,
            "offered_at": offer.offered_at,
            "settled_at": self.clock(),
            "outcome": offer.outcome,
            "how": offer.how,
            "reason": offer.reason,
            "matched_chars": offer.matched,
            "language": context.language,
            "kind": context.kind,
            "mode": context.mode,
            "client": context.client,
            "file": context.file,
            "model": context.model,
            "model_hash": context.model_hash,
            "template": context.template,
            "prompt_order": context.prompt_order,
            "settings": json.dumps(context.settings, sort_keys=True),
            "prefix": offer.prefix,
            "suffix": offer.suffix,
            "completion": offer.completion,
            "typed": typed,
            "typed_complete": int(complete),
        }
        for name in TEXT_COLUMNS:
            record[name] = self.scrubber(record[name])
        self.sink.put(record)


SHAPING_SETTINGS = (
    "max_tokens_inline",
    "max_tokens_block",
    "line_candidates",
    "line_forks",
    "time_budget_inline_ms",
    "time_budget_block_ms",
    "prefix_tokens",
    "suffix_tokens",
    "fim_order",
    "cold_start_tokens",
    "context_tokens",
    "context_definitions",
    "context_buffers",
    "context_recent",
    "context_similar",
)
"""The settings that shaped a completion, stored with it (never paths)."""


def shaping_settings(settings: Any) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in SHAPING_SETTINGS}
