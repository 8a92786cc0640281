"""Which corpora an evaluation run reads: directories given with `--source`, else the standard ones.

The standard corpora, their dev/test split and the files training must stay
off live in `lsp_server.corpora`, outside this package, so that training
never imports the evaluation.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from lsp_server.corpora import (
    STANDARD_LANGUAGES,
    Corpus,
    CorpusError,
    make_corpus,
    split_of,
    standard_corpora,
    walk_files,
)
from lsp_server.languages import language_for_path

__all__ = ["STANDARD_LANGUAGES", "directory_corpora", "discover", "split_of"]
"""The split and the standard languages, re-exported for callers of this module's former layout."""


def directory_corpora(directory: Path, languages: Iterable[str]) -> list[Corpus]:
    """Files of the wanted languages in a directory (a git repository: its tracked files)."""
    directory = directory.resolve()
    if not directory.is_dir():
        raise CorpusError(f"{directory} is not a directory")
    wanted = set(languages)
    version = ""
    paths: list[Path]
    git = shutil.which("git")
    tracked = (
        subprocess.run(
            [git, "-C", str(directory), "ls-files", "-z"], capture_output=True, text=True, check=False
        )
        if git
        else None
    )
    if tracked is not None and tracked.returncode == 0:
        paths = [directory / name for name in tracked.stdout.split("\0") if name]
        head = subprocess.run(
            [git or "git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        version = head.stdout.strip()
    else:
        paths = list(walk_files(directory))
    by_language: dict[str, list[Path]] = {}
    for path in paths:
        spec = language_for_path(str(path))
        if spec is not None and spec.id in wanted and path.is_file():
            by_language.setdefault(spec.id, []).append(path)
    return [
        make_corpus(directory.name, language, directory, version, files)
        for language, files in sorted(by_language.items())
    ]


def discover(languages: Iterable[str], sources: Iterable[Path] = ()) -> list[Corpus]:
    """Corpora for the languages: the given directories, else the standard ones.

    Every missing standard corpus is reported in one error, with its fix."""
    languages = list(languages)
    sources = list(sources)
    corpora: list[Corpus] = []
    if sources:
        corpora = [c for directory in sources for c in directory_corpora(directory, languages)]
        if not corpora:
            raise CorpusError(f"no files of {', '.join(languages)} in {', '.join(map(str, sources))}")
        return corpora
    problems: list[str] = []
    for language in languages:
        try:
            corpora.extend(standard_corpora(language))
        except CorpusError as exc:
            problems.append(str(exc))
    if problems:
        raise CorpusError("missing corpora:\n  " + "\n  ".join(problems))
    return corpora
