"""Where training code comes from: directories, git repositories, datasets on disk,
installed Python distributions (`packages.py`).

Every source yields `SourceFile`s with a stable path (`<source name>/<path in
source>`): the split, the dedup report and the exclusion lists all key on it.
Markdown and reST files are not code themselves; their code blocks are (see
`docs.py`).
"""

from __future__ import annotations

import fnmatch
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lsp_server.corpora import CorpusError, go_source
from training.config import ConfigError, expand_path
from training.data import packages
from training.data.docs import DOC_EXTENSIONS, code_blocks

SourceKind = Literal["auto", "directory", "git", "dataset", "site-packages"]


@dataclass
class SourceConfig:
    path: str
    """A directory, a git work tree, a `save_to_disk` directory, a .jsonl/.parquet file or directory,
    'python-stdlib' (this interpreter's standard library), 'go-stdlib[/folder]' (the newest
    installed Go standard library source) or 'site-packages' (this interpreter's installed
    distributions, permissively licensed ones only; `kind: site-packages` reads another environment's)."""
    name: str = ""
    """Prefix of every path from this source (default: the directory's name; python-packages for
    site-packages, whose own name the vendored-code filter would drop)."""
    kind: SourceKind = "auto"
    revision: str = "HEAD"
    """git: the commit to read (committed code only; the work tree may hold secrets in progress)."""
    include: list[str] = field(default_factory=list)
    """Glob patterns (on the path inside the source); empty: everything."""
    exclude: list[str] = field(default_factory=list)
    text_field: str = "content"
    path_field: str = "path"
    language_field: str = ""
    """Datasets: column with a language name (e.g. The Stack's `lang`); empty: detect from the path."""
    max_files: int = 0
    """0: no limit."""
    max_files_per_distribution: int = 0
    """site-packages: at most this many files of each distribution (0: no limit), so that a few
    large ones (torch, transformers) do not make up the source."""
    optional: bool = False
    """A missing path is skipped (and reported) instead of stopping the run: for code that only
    some machines have installed."""


@dataclass(frozen=True)
class SourceFile:
    path: str
    text: str | None
    """None when the bytes are not UTF-8 text (the filters drop it as binary)."""
    origin: str
    declared_language: str = ""
    """A language the source states (a dataset column, a code fence); else detected later."""
    location: str = ""
    """Where it lives on disk, for exclusion lists given as file paths."""


PYTHON_STDLIB = "python-stdlib"
"""A source path that names this interpreter's standard library, wherever it is installed."""


SITE_PACKAGES = "site-packages"
"""A source path that names this interpreter's site-packages (its purelib), wherever it is."""
SITE_PACKAGES_NAME = "python-packages"


GO_STDLIB = "go-stdlib"
"""A source path (or its first part, `go-stdlib/runtime`) that names the newest installed
golang-X.Y-src, the one the evaluation reads: a recipe naming `/usr/share/go-1.19/src` finds
nothing on a machine with another Go version."""


def source_root(path: str) -> Path:
    if path == PYTHON_STDLIB:
        return Path(sysconfig.get_paths()["stdlib"])
    if path == SITE_PACKAGES:
        return Path(sysconfig.get_paths()["purelib"])
    first, _, rest = path.partition("/")
    if first == GO_STDLIB:
        return _go_root() / rest
    return Path(expand_path(path))


def _go_root() -> Path:
    try:
        return Path(go_source().root)
    except (CorpusError, OSError):  # not installed, or no dpkg to ask: an optional source is skipped
        return Path("/nonexistent/golang-src")


def _is_site_packages(config: SourceConfig) -> bool:
    return config.kind == "site-packages" or (config.kind == "auto" and config.path == SITE_PACKAGES)


def source_name(config: SourceConfig) -> str:
    if config.name:
        return config.name
    return SITE_PACKAGES_NAME if _is_site_packages(config) else source_root(config.path).stem


def source_details(config: SourceConfig) -> dict[str, Any]:
    """What the stats should say about a source beyond its files: for site-packages, which
    distributions were read, with their license, and which were left out and why."""
    if not _is_site_packages(config):
        return {}
    return {"distributions": packages.select(source_root(config.path)).report()}


def iter_source(config: SourceConfig) -> Iterator[SourceFile]:
    root = source_root(config.path)
    if not root.exists():
        raise ConfigError(f"source {config.path} does not exist")
    kind = "site-packages" if _is_site_packages(config) else config.kind
    if kind == "auto":
        kind = _detect_kind(root)
    name = source_name(config)
    if kind == "site-packages":
        files = _iter_site_packages(root, config, name)
    elif kind == "dataset":
        files = _iter_dataset(root, config, name)
    elif kind == "git":
        files = _iter_git(root, config, name)
    else:
        files = _iter_directory(root, config, name)
    for count, item in enumerate(files, start=1):
        yield from _expand_docs(item)
        if config.max_files and count >= config.max_files:
            return


def _detect_kind(root: Path) -> SourceKind:
    if root.is_file() or (root / "dataset_info.json").exists() or (root / "dataset_dict.json").exists():
        return "dataset"
    if (root / ".git").exists():
        return "git"
    if any(root.glob("*.parquet")) or any(root.glob("*.jsonl")):
        return "dataset"
    return "directory"


def _wanted(relative: str, config: SourceConfig) -> bool:
    if config.include and not any(fnmatch.fnmatch(relative, p) for p in config.include):
        return False
    return not any(fnmatch.fnmatch(relative, p) for p in config.exclude)


def _decode(data: bytes) -> str | None:
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _iter_directory(root: Path, config: SourceConfig, name: str) -> Iterator[SourceFile]:
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(root).as_posix()
        if relative.startswith(".git/") or "/.git/" in relative or not _wanted(relative, config):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        yield SourceFile(f"{name}/{relative}", _decode(data), name, location=str(path))


def _iter_site_packages(root: Path, config: SourceConfig, name: str) -> Iterator[SourceFile]:
    selection = packages.select(root)
    chosen = packages.package_files(
        root, selection, lambda relative: _wanted(relative, config), config.max_files_per_distribution
    )
    for relative, path in chosen:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        yield SourceFile(f"{name}/{relative}", _decode(data), name, location=str(path))


def _iter_git(root: Path, config: SourceConfig, name: str) -> Iterator[SourceFile]:
    def git(*args: str) -> bytes:
        try:
            return subprocess.run(
                ["git", "-C", str(root), *args], check=True, capture_output=True, timeout=600
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            raise ConfigError(f"git source {root}: {detail.decode(errors='replace').strip() or exc}") from exc

    listing = git("ls-tree", "-r", "-z", "--full-tree", config.revision)
    entries: list[tuple[str, str]] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, relative_bytes = record.partition(b"\t")
        mode, kind, sha = meta.decode().split()
        relative = relative_bytes.decode("utf-8", errors="replace")
        if kind == "blob" and mode != "120000" and _wanted(relative, config):
            entries.append((sha, relative))
    if not entries:
        return
    # One `cat-file --batch` process for every blob: thousands of files in seconds.
    request = b"".join(f"{sha}\n".encode() for sha, _ in entries)
    try:
        output = subprocess.run(
            ["git", "-C", str(root), "cat-file", "--batch"], input=request, check=True, capture_output=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigError(f"git source {root}: cannot read blobs: {exc}") from exc
    position = 0
    for _, relative in entries:
        header_end = output.index(b"\n", position)
        size = int(output[position:header_end].split()[2])
        data = output[header_end + 1 : header_end + 1 + size]
        position = header_end + 1 + size + 1
        yield SourceFile(f"{name}/{relative}", _decode(data), name, location=str(root / relative))


def _iter_dataset(root: Path, config: SourceConfig, name: str) -> Iterator[SourceFile]:
    import datasets

    dataset: datasets.Dataset
    if root.is_dir() and ((root / "dataset_info.json").exists() or (root / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(root))
        if isinstance(loaded, datasets.DatasetDict):
            dataset = datasets.concatenate_datasets([loaded[split] for split in sorted(loaded)])
        else:
            dataset = loaded
    else:
        files = [root] if root.is_file() else sorted([*root.rglob("*.jsonl"), *root.rglob("*.parquet")])
        if not files:
            raise ConfigError(f"dataset source {root} has no .jsonl or .parquet files")
        builder = "parquet" if files[0].suffix == ".parquet" else "json"
        dataset = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    columns = set(dataset.column_names)
    if config.text_field not in columns:
        raise ConfigError(
            f"dataset source {root} has no column {config.text_field!r} (text_field); "
            f"columns: {', '.join(sorted(columns))}"
        )
    has_path = config.path_field in columns
    for index, row in enumerate(dataset):
        relative = str(row[config.path_field]) if has_path else f"row-{index}"
        if not _wanted(relative, config):
            continue
        text = row[config.text_field]
        declared = str(row.get(config.language_field) or "") if config.language_field else ""
        yield SourceFile(
            f"{name}/{relative}", text if isinstance(text, str) else None, name, declared_language=declared
        )


def _expand_docs(item: SourceFile) -> Iterator[SourceFile]:
    if item.text is None or Path(item.path).suffix.lower() not in DOC_EXTENSIONS:
        yield item
        return
    for number, block in enumerate(code_blocks(item.text, item.path)):
        yield SourceFile(
            f"{item.path}#block{number}",
            block.code,
            item.origin,
            declared_language=block.language,
            location=item.location,
        )
