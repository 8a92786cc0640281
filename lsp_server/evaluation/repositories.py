"""Multi-file repositories installed on the machine, for the cross-file track.

A repository is a `Corpus` whose root is one package: what a user would open
as a workspace. Python: packages of the standard library and a fixed list of
packages in this interpreter's site-packages; Go: every package directory of
the standard library; TypeScript: the pinned npm packages. File keys are the
standard corpora's keys (`python-stdlib/email/utils.py`, `go-stdlib/net/url/url.go`),
so a file has the same split on both tracks.
"""

from __future__ import annotations

import platform
import sysconfig
from importlib import metadata
from pathlib import Path

from lsp_server import corpora
from lsp_server.corpora import Corpus, CorpusError, SourceFile
from lsp_server.languages import language_for_path

CROSSFILE_LANGUAGES = ("python", "go", "typescript")
MIN_FILES = 3
"""Fewer files leave too little to refer to."""

PYTHON_STDLIB_PACKAGES = (
    "asyncio",
    "concurrent",
    "ctypes",
    "curses",
    "dbm",
    "email",
    "html",
    "http",
    "importlib",
    "json",
    "logging",
    "multiprocessing",
    "sqlite3",
    "tomllib",
    "unittest",
    "urllib",
    "wsgiref",
    "xml",
    "xmlrpc",
    "zoneinfo",
)
SITE_PACKAGES = (
    "anyio",
    "attr",
    "cattrs",
    "click",
    "datasets",
    "dateutil",
    "filelock",
    "fsspec",
    "h11",
    "jinja2",
    "packaging",
    "pydantic",
)
"""Pure-Python, multi-module packages; those not installed are skipped."""
SITE_DISTRIBUTIONS = {"attr": "attrs", "dateutil": "python-dateutil"}


def repositories(language: str) -> list[Corpus]:
    """The installed repositories of one language (CorpusError when there is none)."""
    if language == "python":
        found = _python_repositories()
    elif language == "go":
        found = _go_repositories()
    elif language == "typescript":
        found = corpora.standard_corpora("typescript")
    else:
        raise CorpusError(
            f"no cross-file repositories for {language!r} (known: {', '.join(CROSSFILE_LANGUAGES)})"
        )
    found = [_own_language(repo) for repo in found]
    found = [repo for repo in found if len(repo.files) >= MIN_FILES]
    if not found:
        raise CorpusError(f"no {language} repository with at least {MIN_FILES} files is installed")
    return found


def _own_language(repo: Corpus) -> Corpus:
    """Only files the project index reads as the repository's language (npm packages hold .js.flow too)."""
    files = tuple(
        f for f in repo.files if getattr(language_for_path(str(f.path)), "id", None) == repo.language
    )
    return Corpus(repo.name, repo.language, repo.root, repo.version, files)


def _subset(name: str, base: Corpus, root: Path, version: str) -> Corpus:
    """The files of `base` under `root`, keeping their keys."""
    files = tuple(f for f in base.files if f.path.is_relative_to(root))
    return Corpus(name, base.language, root, version, files)


def _python_repositories() -> list[Corpus]:
    stdlib = corpora.standard_corpora("python")[0]
    found = [
        _subset(f"python-stdlib/{name}", stdlib, stdlib.root / name, stdlib.version)
        for name in PYTHON_STDLIB_PACKAGES
        if (stdlib.root / name / "__init__.py").is_file()
    ]
    site = Path(sysconfig.get_paths()["purelib"])
    for name in SITE_PACKAGES:
        root = site / name
        if not (root / "__init__.py").is_file():
            continue
        try:
            version = metadata.version(SITE_DISTRIBUTIONS.get(name, name))
        except metadata.PackageNotFoundError:
            version = ""
        files = tuple(
            SourceFile("python", path, f"site-packages/{name}/{path.relative_to(root).as_posix()}", name)
            for path in sorted(root.rglob("*.py"))
            if not set(path.relative_to(root).parts[:-1]) & set(corpora.PYTHON_EXCLUDE)
            and corpora.MIN_FILE_BYTES <= path.stat().st_size <= corpora.MAX_FILE_BYTES
        )
        found.append(
            Corpus(f"site-packages/{name}", "python", root, version or platform.python_version(), files)
        )
    return found


def _go_repositories() -> list[Corpus]:
    """One repository per package directory (Go's unit of name sharing), tests left out."""
    stdlib = corpora.standard_corpora("go")[0]
    by_directory: dict[Path, list[SourceFile]] = {}
    for source in stdlib.files:
        if not source.path.name.endswith("_test.go"):
            by_directory.setdefault(source.path.parent, []).append(source)
    return [
        Corpus(
            f"go-stdlib/{directory.relative_to(stdlib.root).as_posix()}",
            "go",
            directory,
            stdlib.version,
            tuple(files),
        )
        for directory, files in sorted(by_directory.items())
    ]
