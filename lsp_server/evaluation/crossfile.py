"""The cross-file track's tasks: holes whose answer uses a name only another file defines.

The holes themselves are cut by `lsp_server.holes.crossfile` (shared with
training); this module picks them per language and split from whole
repositories, like `tasks.build_tasks` does per kind from single files.
Splits come from the standard corpora's file keys.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from lsp_server.corpora import Corpus, SourceFile, Split
from lsp_server.evaluation.tasks import Task, make_task, parse_clean
from lsp_server.holes.crossfile import RepositorySymbols, Use, crossfile_holes, find_uses, symbols_under


def repository_symbols(repo: Corpus) -> RepositorySymbols:
    return symbols_under(repo.root, repo.language)


def _round_robin(lists: Sequence[Sequence[tuple[Corpus, SourceFile]]]) -> Iterable[tuple[Corpus, SourceFile]]:
    longest = max((len(items) for items in lists), default=0)
    for index in range(longest):
        for items in lists:
            if index < len(items):
                yield items[index]


def build_crossfile_tasks(
    repositories: Sequence[Corpus],
    *,
    splits: Sequence[Split] = ("dev",),
    per_group: int = 30,
    seed: int = 0,
    per_file: int = 2,
) -> list[Task]:
    """Up to `per_group` cross-file tasks per language and split, at most `per_file` per file.

    Repositories are visited in a seeded order, one file of each in turn, so
    that a run spreads over many of them; a smaller run is a prefix of a larger one."""
    tasks: list[Task] = []
    for language in dict.fromkeys(repo.language for repo in repositories):
        for split in splits:
            ordered = []
            for repo in repositories:
                if repo.language != language:
                    continue
                files = [f for f in repo.files if f.split == split]
                random.Random(f"{seed}:{repo.name}:{split}").shuffle(files)
                ordered.append([(repo, f) for f in files])
            random.Random(f"{seed}:{language}:{split}").shuffle(ordered)
            tasks.extend(_tasks_for(_round_robin(ordered), per_group, seed, per_file))
    return tasks


def _tasks_for(
    files: Iterable[tuple[Corpus, SourceFile]], per_group: int, seed: int, per_file: int
) -> list[Task]:
    found: list[Task] = []
    tables: dict[str, RepositorySymbols] = {}
    for repo, source in files:
        if len(found) >= per_group:
            break
        file = parse_clean(source)
        if file is None:
            continue
        if repo.name not in tables:
            tables[repo.name] = repository_symbols(repo)
        uses = find_uses(file, str(source.path), tables[repo.name])
        chooser = random.Random(f"{seed}:{source.key}:crossfile")
        holes = crossfile_holes(file, uses, chooser)
        chooser.shuffle(holes)
        picked = 0
        for hole, use in holes:
            if picked == per_file or len(found) == per_group:
                break
            task = make_task(source, file, hole)
            if task is not None:
                found.append(
                    dataclasses.replace(
                        task, repository=str(repo.root), names=(use.name,), definition=_relative(repo, use)
                    )
                )
                picked += 1
    return found


def _relative(repo: Corpus, use: Use) -> str:
    path = Path(use.defined_in)
    return path.relative_to(repo.root).as_posix() if path.is_relative_to(repo.root) else str(path)
