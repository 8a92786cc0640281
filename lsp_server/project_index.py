"""The workspace's definitions, found with tree-sitter and kept up to date, and its code in windows.

Files are read lazily (an import of the current file pulls in the file it
names) and by a slow background crawl that feeds a name -> definitions map.
Open buffers override the disk. Everything is local and bounded: at most
`max_files` files of at most `max_file_bytes` each.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from lsp_server import snippets
from lsp_server.languages import LanguageSpec, language_for_id, language_for_path
from lsp_server.symbols import Definition, FileSymbols, read_symbols, supported

log = logging.getLogger(__name__)

WINDOW_FILES = 512
"""Files whose windows are kept in memory (those near where the user works)."""

IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        "build",
        "dist",
        "target",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".tox",
        "vendor",
        "third_party",
    }
)


@dataclass(frozen=True)
class _Cached:
    stamp: tuple[float, int]
    symbols: FileSymbols


@dataclass
class _Overlay:
    language_id: str
    text: str
    symbols: FileSymbols | None = None
    windows: list[snippets.Window] | None = None


class ProjectIndex:
    """Definitions and imports of the workspace's files (thread-safe)."""

    def __init__(
        self, roots: list[Path] | None = None, max_files: int = 5000, max_file_bytes: int = 300_000
    ) -> None:
        self.roots = [root.resolve() for root in roots or []]
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self._files: dict[Path, _Cached] = {}
        self._overlays: dict[Path, _Overlay] = {}
        self._by_name: dict[str, list[Definition]] = {}
        self._lock = threading.Lock()
        self._crawler: threading.Thread | None = None
        self._stop = threading.Event()
        self.crawl_seconds = 0.0
        self.crawled = False
        self._windows: OrderedDict[Path, tuple[tuple[float, int], list[snippets.Window]]] = OrderedDict()

    # -- buffers ---------------------------------------------------------------------

    def set_overlay(self, path: Path, language_id: str, text: str) -> None:
        """An open buffer's text replaces the file on disk; symbols are read on demand."""
        with self._lock:
            self._overlays[path] = _Overlay(language_id, text)

    def drop_overlay(self, path: Path) -> None:
        with self._lock:
            self._overlays.pop(path, None)

    # -- reading -------------------------------------------------------------------------

    def symbols(self, path: Path) -> FileSymbols | None:
        """Symbols of a file: from its open buffer if there is one, else from disk."""
        with self._lock:
            overlay = self._overlays.get(path)
        if overlay is not None:
            if overlay.symbols is not None:
                return overlay.symbols
            spec = language_for_id(overlay.language_id) or language_for_path(str(path))
            if spec is None or not supported(spec) or len(overlay.text) > self.max_file_bytes:
                return None
            overlay.symbols = read_symbols(spec, str(path), overlay.text.encode("utf-8", "surrogatepass"))
            return overlay.symbols
        return self._from_disk(path)

    def _from_disk(self, path: Path) -> FileSymbols | None:
        spec = language_for_path(str(path))
        if spec is None or not supported(spec):
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        if stat.st_size > self.max_file_bytes or not path.is_file():
            return None
        stamp = (stat.st_mtime, stat.st_size)
        with self._lock:
            cached = self._files.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached.symbols
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if b"\x00" in data[:8192]:
            return None  # binary
        symbols = read_symbols(spec, str(path), data)
        with self._lock:
            old = self._files.get(path)
            self._files[path] = _Cached(stamp, symbols)
            if old is not None:
                self._unindex(old.symbols)
            self._index(symbols)
        return symbols

    def _index(self, symbols: FileSymbols) -> None:
        for definition in symbols.definitions:
            self._by_name.setdefault(definition.name, []).append(definition)

    def _unindex(self, symbols: FileSymbols) -> None:
        for definition in symbols.definitions:
            entries = self._by_name.get(definition.name)
            if entries and definition in entries:
                entries.remove(definition)

    def windows(self, path: Path) -> list[snippets.Window]:
        """A file's code in overlapping windows (for similar code), from its buffer or the disk;
        the last WINDOW_FILES files read are kept."""
        with self._lock:
            overlay = self._overlays.get(path)
        if overlay is not None:
            if overlay.windows is None:
                overlay.windows = snippets.windows(overlay.text[: self.max_file_bytes])
            return overlay.windows
        try:
            stat = path.stat()
        except OSError:
            return []
        stamp = (stat.st_mtime, stat.st_size)
        with self._lock:
            cached = self._windows.get(path)
            if cached is not None and cached[0] == stamp:
                self._windows.move_to_end(path)
                return cached[1]
        if stat.st_size > self.max_file_bytes or not path.is_file():
            return []
        try:
            data = path.read_bytes()
        except OSError:
            return []
        found = [] if b"\x00" in data[:8192] else snippets.windows(data.decode("utf-8", "replace"))
        with self._lock:
            self._windows[path] = (stamp, found)
            while len(self._windows) > WINDOW_FILES:
                self._windows.popitem(last=False)
        return found

    def lookup(self, name: str) -> list[Definition]:
        with self._lock:
            return list(self._by_name.get(name, ()))

    def forget(self, path: Path) -> None:
        """A file changed or disappeared on disk (workspace/didChangeWatchedFiles)."""
        with self._lock:
            cached = self._files.pop(path, None)
            if cached is not None:
                self._unindex(cached.symbols)
            self._windows.pop(path, None)

    @property
    def size(self) -> tuple[int, int]:
        """(files indexed, definitions indexed)."""
        with self._lock:
            return len(self._files), sum(len(v) for v in self._by_name.values())

    # -- imports ---------------------------------------------------------------------------

    def related_files(self, path: Path, symbols: FileSymbols) -> list[Path]:
        """Files this one imports, then files of the same package (Go, Java)."""
        spec = language_for_id(symbols.language)
        if spec is None:
            return []
        found: list[Path] = []
        for module in symbols.imports:
            found.extend(self._resolve(spec, path, module))
        if spec.id in ("go", "java"):
            found.extend(self.neighbours(path))
        return [p for p in dict.fromkeys(found) if p != path]

    def neighbours(self, path: Path) -> list[Path]:
        """Files of the same kind in the same folder (a Go or Java file's own package)."""
        try:
            entries = sorted(path.parent.iterdir())
        except OSError:
            return []
        return [p for p in entries if p.suffix == path.suffix and not p.name.endswith("_test.go")][:50]

    def _resolve(self, spec: LanguageSpec, path: Path, module: str) -> list[Path]:
        here = path.parent
        candidates: list[Path] = []
        if spec.id == "python":
            level = len(module) - len(module.lstrip("."))
            parts = [p for p in module.lstrip(".").split(".") if p]
            bases = (
                [here.parents[level - 2] if level > 1 and len(here.parents) >= level - 1 else here]
                if level
                else [here, *self.roots, *self._python_bases(parts)]
            )
            for base in bases:
                target = base.joinpath(*parts) if parts else base
                candidates += [target.with_suffix(".py"), target / "__init__.py"]
        elif spec.id in ("javascript", "typescript", "tsx"):
            if module.startswith("."):
                target = (here / module).resolve()
                candidates.append(target)
                for suffix in (".ts", ".tsx", ".js", ".jsx", ".mjs", ".d.ts"):
                    candidates += [target.with_name(target.name + suffix), target / f"index{suffix}"]
        elif spec.id in ("c", "cpp"):
            candidates += [here / module, *(root / module for root in self.roots)]
            candidates += [root / "include" / module for root in self.roots]
        elif spec.id == "go":
            for root in self.roots:
                prefix = _go_module(root)
                if prefix and module.strip('"').startswith(prefix + "/"):
                    directory = root / module.strip('"')[len(prefix) + 1 :]
                    candidates += [p for p in _go_files(directory)]
        elif spec.id == "rust":
            name = module.split("::")[1] if module.startswith("crate::") and "::" in module else module
            name = name.split("::")[0]
            for base in (here, *(root / "src" for root in self.roots)):
                candidates += [base / f"{name}.rs", base / name / "mod.rs"]
        elif spec.id == "java":
            relative = Path(*module.split(".")).with_suffix(".java")
            for root in self.roots:
                for source_root in (root, root / "src" / "main" / "java", root / "src"):
                    candidates.append(source_root / relative)
        return [c for c in candidates if c.is_file()]

    def _python_bases(self, parts: list[str]) -> list[Path]:
        """Where else absolute imports start: a src/ layout, and the folder above a root that
        is the imported package itself (the workspace opened at `pkg/`, code importing `pkg.x`)."""
        bases = [root / "src" for root in self.roots]
        return bases + [root.parent for root in self.roots if parts and root.name == parts[0]]

    # -- crawling ---------------------------------------------------------------------------

    def start_crawl(self, pause_s: float = 0.002) -> None:
        """Index the workspace slowly in the background (for name lookups)."""
        if self._crawler is not None or not self.roots:
            return
        self._crawler = threading.Thread(
            target=self._crawl, args=(pause_s,), name="inkling-index", daemon=True
        )
        self._crawler.start()

    def crawl_now(self) -> None:
        self._crawl(0.0)

    def stop(self) -> None:
        self._stop.set()

    def _crawl(self, pause_s: float) -> None:
        started = time.perf_counter()
        count = 0
        for path in self._workspace_files():
            if self._stop.is_set() or count >= self.max_files:
                break
            if self._from_disk(path) is not None:
                count += 1
            if pause_s:
                time.sleep(pause_s)  # leave the CPU to completions
        self.crawl_seconds = time.perf_counter() - started
        self.crawled = True
        log.info("indexed %d files in %.1fs", count, self.crawl_seconds)

    def _workspace_files(self) -> list[Path]:
        files: list[Path] = []
        for root in self.roots:
            for directory, subdirs, names in os.walk(root):
                subdirs[:] = sorted(d for d in subdirs if d not in IGNORED_DIRS and not d.startswith("."))
                for name in sorted(names):
                    path = Path(directory) / name
                    if language_for_path(name) is not None:
                        files.append(path)
                if len(files) >= self.max_files * 2:
                    return files
        return files


def _go_module(root: Path) -> str | None:
    try:
        for line in (root / "go.mod").read_text().splitlines():
            if line.startswith("module "):
                return line.split()[1]
    except OSError:
        return None
    return None


def _go_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.glob("*.go") if not p.name.endswith("_test.go"))[:50]
    except OSError:
        return []
