"""Train / validation / test by file, decided by a hash of the file's path.

A file lands in one split only, whatever the other files are, so adding a
source never moves a held-out file into training. Paths on an exclusion list
(for example the evaluation instrument's test files) are in no split at all.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from training.config import ConfigError, expand_path

Split = Literal["train", "validation", "test"]


def split_of(path: str, validation_share: float, test_share: float, salt: str = "") -> Split:
    digest = hashlib.sha256(f"{salt}{path}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64
    if bucket < test_share:
        return "test"
    if bucket < test_share + validation_share:
        return "validation"
    return "train"


class Exclusions:
    """Paths or glob patterns; a file is excluded if its dataset path, its path
    inside its source, or its location on disk matches one."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.globs: list[str] = []
        for raw in patterns:
            pattern = raw.strip()
            if not pattern or pattern.startswith("#"):
                continue
            if any(c in pattern for c in "*?["):
                self.globs.append(pattern)
            else:
                self.exact.add(pattern.rstrip("/"))

    @classmethod
    def from_files(cls, paths: Iterable[str]) -> Exclusions:
        patterns: list[str] = []
        for name in paths:
            path = Path(expand_path(name))
            try:
                patterns += path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"cannot read exclusion list {name}: {exc.strerror}") from exc
        return cls(patterns)

    def __len__(self) -> int:
        return len(self.exact) + len(self.globs)

    def matches(self, *names: str) -> bool:
        for name in names:
            if not name:
                continue
            if name in self.exact or any(name.endswith("/" + e) for e in self.exact):
                return True
            if any(fnmatch.fnmatch(name, g) for g in self.globs):
                return True
        return False
