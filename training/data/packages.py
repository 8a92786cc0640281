"""Installed Python distributions as training code (`kind: site-packages`).

A site-packages directory holds code of many projects under many licenses;
only distributions whose metadata says permissive (`licenses.classify`) are
read, and of those only the files their RECORD lists: Python sources and
stubs, not vendored copies (pip's `_vendor/`...), not files outside the
directory (scripts), not what is too small or too large to keep anyway. The
rest is reported, each distribution with its reason, in the prepare stats.

Files keep the distribution's name in their path (`<dist>/<path in
site-packages>`), so `include`/`exclude` globs can pick distributions. Each
distribution's files come in an order fixed by a hash of their path (spread
over the package, not its alphabetically first folder) and are capped by
`max_files_per_distribution`; distributions then take turns (one file of
each, then a second...), so that an overall `max_files` takes a share from
each instead of the first few names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import Distribution, distributions
from itertools import chain, zip_longest
from pathlib import Path, PurePosixPath
from typing import Any

from lsp_server.corpora import MAX_FILE_BYTES, MIN_FILE_BYTES
from training.data.filters import is_benchmark, is_vendored
from training.data.licenses import License, classify

SUFFIXES = (".py", ".pyi")


def canonical_name(name: str) -> str:
    """PEP 503's normalised name: `PyYAML` and `pyyaml`, `typing_extensions` and `typing-extensions` agree."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    license: License
    files: tuple[str, ...] = field(repr=False)
    """Python sources, relative to the site-packages directory, in hash order (uncapped)."""


@dataclass
class Selection:
    taken: list[Package] = field(default_factory=list)
    left_out: dict[str, dict[str, str]] = field(default_factory=dict)
    """name -> version, reason ('license', 'no license', 'benchmark', 'no RECORD', 'no Python files')
    and the license read."""

    def report(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for entry in self.left_out.values():
            reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
        return {
            "taken": {p.name: {"version": p.version, "license": p.license.label} for p in self.taken},
            "left_out": dict(sorted(self.left_out.items())),
            "left_out_by_reason": dict(sorted(reasons.items())),
        }


def _hash_order(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8")).hexdigest()


def _python_files(dist: Distribution, root: Path) -> list[str] | None:
    """Its RECORD's Python sources worth reading (None: it has no RECORD)."""
    if dist.files is None:
        return None
    found = []
    for entry in dist.files:
        relative = PurePosixPath(str(entry))
        if relative.suffix not in SUFFIXES or ".." in relative.parts or "__pycache__" in relative.parts:
            continue
        if relative.name.startswith("__editable__") or is_vendored(str(relative)):
            continue  # an editable install's finder; a vendored copy of another project
        try:
            size = (root / relative).stat().st_size
        except OSError:
            continue
        if MIN_FILE_BYTES <= size <= MAX_FILE_BYTES:
            found.append(str(relative))
    return sorted(found, key=_hash_order)


def _left_out(dist: Distribution, root: Path, terms: License) -> tuple[str, list[str]]:
    """Why a distribution is not read ('' if it is), and its files if it is."""
    if terms.verdict == "restricted":
        return "license", []
    if terms.verdict == "unknown":
        return "no license", []
    files = _python_files(dist, root)
    if files is None:
        return "no RECORD", []
    return ("no Python files", []) if not files else ("", files)


def select(root: Path) -> Selection:
    """The distributions installed in `root`, taken or left out."""
    selection = Selection()
    seen: set[str] = set()
    for dist in sorted(distributions(path=[str(root)]), key=lambda d: canonical_name(d.name or "")):
        name = canonical_name(dist.name or "")
        if not name or name in seen:
            continue  # broken metadata, or a second copy: Python imports the first
        seen.add(name)
        terms = classify(dist.metadata)
        reason, files = ("benchmark", []) if is_benchmark(name) else _left_out(dist, root, terms)
        if reason:
            selection.left_out[name] = {"version": dist.version, "reason": reason, "license": terms.label}
        else:
            selection.taken.append(Package(name, dist.version, terms, tuple(files)))
    return selection


def package_files(
    root: Path, selection: Selection, wanted: Callable[[str], bool], per_package: int
) -> Iterator[tuple[str, Path]]:
    """(`<dist>/<path>`, file) for the taken distributions' files, each capped, taking turns (in an
    order fixed by a hash of their names, so that where `max_files` ends a round is not alphabetical)."""
    queues = []
    for package in sorted(selection.taken, key=lambda p: _hash_order(p.name)):
        chosen = [(f"{package.name}/{f}", root / f) for f in package.files if wanted(f"{package.name}/{f}")]
        queues.append(chosen[:per_package] if per_package else chosen)
    for item in chain.from_iterable(zip_longest(*queues)):
        if item is not None:
            yield item
