"""A local count of completions offered and accepted, for the acceptance rate.

LSP has no "rejected" notification. So every item the server offers carries
a command (`inkling.accepted` with the item's id) that the editor runs when
the user accepts it, which comes back as `workspace/executeCommand`; an item
offered and never accepted was rejected. The counts live in a small JSON
file in the user's state directory and go nowhere else: no code, no file
names, only numbers per editor, language and kind of completion.

An answer with alternatives (`inlineSuggestions`) is one offer: the user sees
one of its items at a time and accepts at most one, so it counts once as
shown and, whichever item is accepted, once as accepted; each item has its
own id all the same, and `byItem` says which was taken (its "shown": answers
that carried an item in that place).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ACCEPT_COMMAND = "inkling.accepted"
"""The command each offered item carries; its one argument is the item id."""

FILE_NAME = "acceptance.json"
FORMAT_VERSION = 1
_REMEMBERED_ITEMS = 512
_GROUPS = ("byClient", "byLanguage", "byKind", "byItem")


def state_dir() -> Path:
    """$INKLING_STATE, else $XDG_STATE_HOME/inkling, else ~/.local/state/inkling."""
    explicit = os.environ.get("INKLING_STATE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "inkling"


@dataclass(frozen=True)
class Offered:
    """What is remembered about an offered item until it is accepted."""

    client: str
    language: str
    kind: str
    place: int = 1
    """Its place in the answer (1: the answer itself; 2 on: alternatives)."""
    siblings: tuple[str, ...] = ()
    """The ids of the answer's other items: accepting one settles them all."""


def empty_record() -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "total": {"shown": 0, "accepted": 0},
        **{group: {} for group in _GROUPS},
    }


def rate(counts: dict[str, int]) -> float | None:
    shown = counts.get("shown", 0)
    return counts.get("accepted", 0) / shown if shown else None


class AcceptanceLog:
    """Counts offered and accepted items; merges them into the file now and then.

    Several servers (one per editor) may share the file: each adds its own
    pending counts under a lock, so none overwrites another's."""

    def __init__(self, path: Path | None = None, flush_interval_s: float = 10.0) -> None:
        self.path = path or state_dir() / FILE_NAME
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._pending = empty_record()
        self._session = empty_record()
        self._offered: OrderedDict[str, Offered] = OrderedDict()
        self._last_flush = time.monotonic()
        self._write_failed = False

    def offered(self, client: str, language: str, kind: str) -> str:
        """Count one item sent to the client; returns the id its command carries."""
        return self.offered_items(client, language, kind, 1)[0]

    def offered_items(self, client: str, language: str, kind: str, count: int) -> list[str]:
        """Count one answer of `count` items (at least one) sent to the client; returns the
        ids their commands carry, the answer's first."""
        ids = [uuid.uuid4().hex[:16] for _ in range(max(1, count))]
        with self._lock:
            for place, item_id in enumerate(ids, start=1):
                siblings = tuple(other for other in ids if other != item_id)
                self._offered[item_id] = Offered(client, language or "unknown", kind, place, siblings)
            while len(self._offered) > _REMEMBERED_ITEMS:
                self._offered.popitem(last=False)
            self._add(self._offered[ids[0]], "shown", places=range(1, len(ids) + 1))
            due = time.monotonic() - self._last_flush >= self.flush_interval_s
        if due:
            self.flush()
        return ids

    def accepted(self, item_id: Any) -> bool:
        """Count an accept; False for an id that was never offered (or already counted, it or
        another item of its answer)."""
        with self._lock:
            item = self._offered.pop(item_id, None) if isinstance(item_id, str) else None
            if item is None:
                return False
            for sibling in item.siblings:
                self._offered.pop(sibling, None)
            self._add(item, "accepted", places=(item.place,))
        self.flush()
        return True

    def _add(self, item: Offered, counter: str, places: Iterable[int]) -> None:
        keys = [
            ("byClient", item.client),
            ("byLanguage", item.language),
            ("byKind", item.kind),
            *(("byItem", str(place)) for place in places),
        ]
        for record in (self._pending, self._session):
            record["total"][counter] += 1
            for group, key in keys:
                counts = record[group].setdefault(key, {"shown": 0, "accepted": 0})
                counts[counter] += 1

    def session(self) -> dict[str, Any]:
        """This server's counts since it started."""
        with self._lock:
            total = dict(self._session["total"])
        return {**total, "rate": rate(total)}

    def flush(self) -> None:
        """Add the pending counts to the file. A failure is logged once and the counts kept."""
        with self._lock:
            pending, self._pending = self._pending, empty_record()
            self._last_flush = time.monotonic()
        if pending["total"]["shown"] == 0 and pending["total"]["accepted"] == 0:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _file_lock(self.path.with_name(self.path.name + ".lock")):
                merged = merge_records(read_record(self.path), pending)
                partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.partial")
                partial.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n", encoding="utf-8")
                partial.replace(self.path)
        except OSError as exc:
            with self._lock:
                self._pending = merge_records(self._pending, pending)
            if not self._write_failed:
                self._write_failed = True
                log.warning("cannot write acceptance counts to %s: %s", self.path, exc)


def read_record(path: Path) -> dict[str, Any]:
    """The stored counts; an unreadable or foreign file counts as empty (and is replaced)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty_record()
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable acceptance counts in %s: %s", path, exc)
        return empty_record()
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        return empty_record()
    return merge_records(empty_record(), data)


def merge_records(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` plus `extra`, counter by counter (tolerates missing or malformed parts)."""
    merged: dict[str, Any] = json.loads(json.dumps(base))
    for counter in ("shown", "accepted"):
        merged["total"][counter] += _count(extra.get("total"), counter)
    for group in _GROUPS:
        groups = extra.get(group)
        if not isinstance(groups, dict):
            continue
        for key, counts in groups.items():
            target = merged[group].setdefault(str(key), {"shown": 0, "accepted": 0})
            for counter in ("shown", "accepted"):
                target[counter] += _count(counts, counter)
    return merged


def _count(counts: Any, counter: str) -> int:
    value = counts.get(counter, 0) if isinstance(counts, dict) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: one writer at a time is the user's lot
        yield
        return
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
