"""API keys for the HTTP server: a local file of names and SHA-256 hashes.

A key is shown once, when it is made (`inkling keys add NAME`); the file
holds only its hash, so a copy of the file lets nobody in. The server
requires a key whenever it listens beyond loopback; on loopback a key is
optional, and a wrong one is refused all the same. The key's name is the
user in metrics and usage, and the client whose newer request supersedes its
older one. An admin key (`inkling keys add NAME --admin`) may also read every
user's usage (`GET /v1/usage`); any other key reads its own.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lsp_server.acceptance import state_dir
from lsp_server.errors import InklingError

FILE_NAME = "http-keys.json"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.@")


@dataclass(frozen=True)
class KeyRecord:
    name: str
    sha256: str
    created: str
    admin: bool = False


class KeyStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / FILE_NAME
        self._read: tuple[tuple[int, int], list[KeyRecord]] | None = None
        """The records and the file's (mtime, size) they were read at: a server checks the
        key of every request, and `inkling keys` may change the file while it runs."""

    def records(self) -> list[KeyRecord]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise InklingError(f"cannot read the API keys in {self.path}: {exc}") from exc
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._read is not None and self._read[0] == stamp:
            return self._read[1]
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            records = [
                KeyRecord(r["name"], r["sha256"], r.get("created", ""), bool(r.get("admin", False)))
                for r in raw["keys"]
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InklingError(f"cannot read the API keys in {self.path}: {exc}") from exc
        self._read = (stamp, records)
        return records

    def add(self, name: str, *, admin: bool = False) -> str:
        """A new key for `name`, returned once (only its hash is kept)."""
        if not name or not set(name) <= _NAME_CHARS or len(name) > 64:
            raise InklingError(f"key name {name!r}: use up to 64 letters, digits and - _ . @")
        records = self.records()
        if any(record.name == name for record in records):
            raise InklingError(f"a key named {name!r} exists (revoke it first to replace it)")
        secret = "ink-" + secrets.token_urlsafe(32)
        created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self._write([*records, KeyRecord(name, _digest(secret), created, admin)])
        return secret

    def revoke(self, name: str) -> None:
        records = self.records()
        kept = [record for record in records if record.name != name]
        if len(kept) == len(records):
            raise InklingError(f"no key named {name!r}")
        self._write(kept)

    def name_of(self, secret: str) -> str | None:
        """The name of the key `secret`, if it is one (compared in constant time)."""
        record = self.record_of(secret)
        return None if record is None else record.name

    def record_of(self, secret: str) -> KeyRecord | None:
        digest = _digest(secret)
        found = None
        for record in self.records():
            if hmac.compare_digest(record.sha256, digest):
                found = record
        return found

    def _write(self, records: list[KeyRecord]) -> None:
        """Atomically, readable by the owner only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"version": 1, "keys": [r.__dict__ for r in records]}
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(body, out, indent=2)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
