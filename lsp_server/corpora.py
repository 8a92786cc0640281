"""The code installed on this machine that Inkling measures on, split by path hash.

The standard corpora are code that a package manager puts on the machine, so a
run is reproducible offline: Python's own standard library, Go's standard
library (Debian's golang-*-src), pinned npm packages unpacked into Inkling's
cache (JavaScript, TypeScript), and C from Debian packages (libc6-dev's
headers, libxcrypt-source, libcurl4-doc's examples). Files listed by `dpkg -L`
rather than globbed, so that whatever else is installed never changes the set.

Every file gets a stable key (corpus name + path inside the corpus, no version
numbers) whose hash decides dev or test, so a file never moves between splits
when a corpus is upgraded. `inkling eval` tests on the test half
(`lsp_server.evaluation.corpus` adds directories given with `--source`), and
training stays off it (`held_out`): that is why this lives outside the
evaluation package, which training does not import.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sysconfig
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from lsp_server.errors import InklingError
from lsp_server.models import cache_dir

Split = Literal["dev", "test"]
TEST_PERMILLE = 250
"""A quarter of the files are held out for testing; tuning looks only at dev."""
MAX_FILE_BYTES = 200_000
MIN_FILE_BYTES = 200
MAX_LINE_CHARS = 400
"""Longer lines mean generated or minified code, which says little about completion."""

STANDARD_LANGUAGES = ("python", "go", "javascript", "typescript", "c")


class CorpusError(InklingError):
    """A corpus is missing or cannot be read; the message says how to install it."""


def split_of(key: str) -> Split:
    """dev or test, from a hash of the file's corpus key (stable across machines)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 1000 < TEST_PERMILLE else "dev"


@dataclass(frozen=True)
class SourceFile:
    language: str
    """LanguageSpec.id"""
    path: Path
    key: str
    """corpus name / path inside the corpus: what the split hash and task ids use."""
    corpus: str

    @property
    def split(self) -> Split:
        return split_of(self.key)


@dataclass(frozen=True)
class Corpus:
    """One place files come from, with what identifies its version."""

    name: str
    language: str
    root: Path
    version: str
    files: tuple[SourceFile, ...] = field(repr=False)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "language": self.language,
            "root": str(self.root),
            "version": self.version,
            "files": len(self.files),
            "dev_files": sum(1 for f in self.files if f.split == "dev"),
            "test_files": sum(1 for f in self.files if f.split == "test"),
        }


# -- npm packages, pinned -------------------------------------------------------------


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    language: str
    include: tuple[str, ...]
    """Folders (or files) inside the package that hold hand-written source."""
    exclude: tuple[str, ...] = ()


NPM_PACKAGES: tuple[NpmPackage, ...] = (
    NpmPackage("eslint", "8.57.1", "javascript", ("lib",)),
    NpmPackage("express", "4.21.2", "javascript", ("lib",)),
    NpmPackage("lodash", "4.17.21", "javascript", (".",), exclude=("fp",)),
    NpmPackage("commander", "12.1.0", "javascript", ("lib",)),
    NpmPackage("rxjs", "7.8.1", "typescript", ("src",)),
    NpmPackage("immer", "10.1.1", "typescript", ("src",)),
)


def npm_cache_dir() -> Path:
    return cache_dir() / "corpora" / "npm"


def npm_package_dir(package: NpmPackage) -> Path:
    return npm_cache_dir() / f"{package.name}@{package.version}"


def install_npm_packages(packages: Iterable[NpmPackage] = NPM_PACKAGES) -> list[str]:
    """Unpack the pinned npm packages into the cache with `npm pack` (no install scripts run).

    Idempotent: packages already unpacked are left alone. Returns what was done."""
    done: list[str] = []
    npm = shutil.which("npm")
    for package in packages:
        target = npm_package_dir(package)
        if (target / "package" / "package.json").is_file():
            done.append(f"{package.name}@{package.version}: already in {target}")
            continue
        if npm is None:
            raise CorpusError("npm is not installed (apt-get install npm, or nodejs from your distribution)")
        with tempfile.TemporaryDirectory() as scratch:
            result = subprocess.run(
                [npm, "pack", f"{package.name}@{package.version}", "--json", "--pack-destination", scratch],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise CorpusError(
                    f"npm pack {package.name}@{package.version} failed: {result.stderr.strip()}"
                )
            filename = json.loads(result.stdout)[0]["filename"]
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            with tarfile.open(Path(scratch) / filename) as archive:
                archive.extractall(partial, filter="data")
            shutil.rmtree(target, ignore_errors=True)
            partial.replace(target)
        done.append(f"{package.name}@{package.version}: unpacked into {target}")
    return done


def _npm_corpus(language: str) -> list[Corpus]:
    corpora = []
    for package in NPM_PACKAGES:
        if package.language != language:
            continue
        root = npm_package_dir(package) / "package"
        if not (root / "package.json").is_file():
            raise CorpusError(
                f"npm package {package.name}@{package.version} is not in {npm_package_dir(package)}: "
                "run `inkling eval --prepare`"
            )
        files = []
        for include in package.include:
            for path in walk_files(root / include):
                relative = path.relative_to(root)
                if relative.parts[0] in package.exclude or path.name.endswith((".d.ts", ".min.js")):
                    continue
                files.append(path)
        corpora.append(make_corpus(f"npm/{package.name}", language, root, package.version, files))
    return corpora


# -- Debian packages ------------------------------------------------------------------


@dataclass(frozen=True)
class DebianSource:
    package: str
    key: str
    """The name in file keys: no version, so that upgrades keep files in their split."""
    language: str
    root: str
    """Only files under this folder; keys are relative to it."""
    extensions: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    """Folder names anywhere in the path that are skipped (test data, vendored code)."""


C_SOURCES: tuple[DebianSource, ...] = (
    DebianSource("libc6-dev", "libc6-dev", "c", "/usr/include", (".h",)),
    DebianSource("libxcrypt-source", "libxcrypt", "c", "/usr/src/libxcrypt", (".c", ".h")),
    DebianSource("libcurl4-doc", "curl-examples", "c", "/usr/share/doc/libcurl4/examples", (".c",)),
)
GO_EXCLUDE = ("testdata", "vendor")


def _dpkg_version(package: str) -> str | None:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}\t${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or "install ok installed" not in result.stdout:
        return None
    return result.stdout.split("\t")[-1]


def _dpkg_files(package: str) -> list[Path]:
    result = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True)
    return [Path(line) for line in result.stdout.splitlines() if line.startswith("/")]


def _debian_corpus(source: DebianSource) -> Corpus:
    if shutil.which("dpkg-query") is None:
        raise CorpusError(f"the {source.language} corpus comes from Debian packages; dpkg is not available")
    version = _dpkg_version(source.package)
    if version is None:
        raise CorpusError(f"the {source.language} corpus needs `apt-get install {source.package}`")
    root = Path(source.root)
    files = []
    for path in _dpkg_files(source.package):
        if not path.is_relative_to(root) or path.suffix not in source.extensions or not path.is_file():
            continue
        if any(part in source.exclude for part in path.relative_to(root).parts[:-1]):
            continue
        files.append(path)
    return make_corpus(f"deb/{source.package}", source.language, root, version, files, key_name=source.key)


def go_source() -> DebianSource:
    """The newest installed golang-X.Y-src package (Debian's golang-src depends on one)."""
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Status}\n", "golang-*-src"],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = [
        line.split("\t")[0]
        for line in result.stdout.splitlines()
        if "install ok installed" in line and line.split("\t")[0].count("-") == 2
    ]
    if not installed:
        raise CorpusError("the go corpus needs `apt-get install golang-src` (Go's standard library source)")

    def version(name: str) -> tuple[int, ...]:
        return tuple(int(x) for x in name.split("-")[1].split(".") if x.isdigit())

    package = max(installed, key=version)
    go_version = package.split("-")[1]
    return DebianSource(package, "go-stdlib", "go", f"/usr/share/go-{go_version}/src", (".go",), GO_EXCLUDE)


# -- Python's standard library ---------------------------------------------------------

PYTHON_EXCLUDE = ("site-packages", "dist-packages", "test", "tests", "idle_test", "lib2to3", "__pycache__")


def _python_corpus() -> Corpus:
    import platform

    root = Path(sysconfig.get_paths()["stdlib"])
    files = [
        path
        for path in walk_files(root)
        if path.suffix == ".py" and not any(p in PYTHON_EXCLUDE for p in path.relative_to(root).parts[:-1])
    ]
    return make_corpus("python-stdlib", "python", root, platform.python_version(), files)


def standard_corpora(language: str) -> list[Corpus]:
    """The standard corpora of one language; CorpusError says what to install."""
    if language == "python":
        return [_python_corpus()]
    if language == "go":
        return [_debian_corpus(go_source())]
    if language in ("javascript", "typescript"):
        return _npm_corpus(language)
    if language == "c":
        return [_debian_corpus(source) for source in C_SOURCES]
    raise CorpusError(f"no standard corpus for {language!r} (standard: {', '.join(STANDARD_LANGUAGES)})")


# -- what training must not see -----------------------------------------------------------


def fingerprint(text: str) -> str:
    """A file's content hash, blind to trailing whitespace and line endings (copies are still copies)."""
    lines = (line.rstrip() for line in text.strip().splitlines())
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class HeldOut:
    """The files `inkling eval` tests on, which training must never see.

    Recognised by key (a dataset source named like its corpus, e.g. `python-stdlib`,
    catches every version of a file) and by content (a copy under any name)."""

    corpora: frozenset[str]
    fingerprints: frozenset[str]

    def holds(self, key: str, text: str | None) -> bool:
        if any(key.startswith(name + "/") for name in self.corpora) and split_of(key) == "test":
            return True
        return text is not None and fingerprint(text) in self.fingerprints


def held_out(languages: Iterable[str] = STANDARD_LANGUAGES) -> HeldOut:
    """The test files of the standard corpora that are installed (missing ones hold nothing)."""
    names: set[str] = set()
    prints: set[str] = set()
    for language in languages:
        try:
            corpora = standard_corpora(language)
        except CorpusError:
            continue
        for corpus in corpora:
            for source in corpus.files:
                names.add(
                    source.key.removesuffix("/" + str(PurePosixPath(source.path.relative_to(corpus.root))))
                )
                if source.split == "test" and (text := read_source(source.path)) is not None:
                    prints.add(fingerprint(text))
    return HeldOut(frozenset(names), frozenset(prints))


def missing_debian_packages() -> list[str]:
    """The Debian packages the standard corpora need that are not installed."""
    wanted = [source.package for source in C_SOURCES]
    missing = [name for name in wanted if _dpkg_version(name) is None]
    try:
        go_source()
    except CorpusError:
        missing.append("golang-src")
    return missing


def make_corpus(
    name: str, language: str, root: Path, version: str, paths: Iterable[Path], key_name: str | None = None
) -> Corpus:
    files = tuple(
        SourceFile(language, path, f"{key_name or name}/{PurePosixPath(path.relative_to(root))}", name)
        for path in sorted(set(paths))
        if _size_ok(path)
    )
    return Corpus(name, language, root, version, files)


def _size_ok(path: Path) -> bool:
    try:
        size = path.stat().st_size
    except OSError:
        return False
    return MIN_FILE_BYTES <= size <= MAX_FILE_BYTES


def walk_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


def read_source(path: Path) -> str | None:
    """The file's text, or None for what a benchmark should not use (binary, CRLF, minified)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if "\r" in text or "\0" in text:
        return None
    if any(len(line) > MAX_LINE_CHARS for line in text.split("\n")):
        return None
    return text
