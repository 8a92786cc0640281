"""Project context for training examples, found by the server's own code.

The server puts signatures from other files of the workspace in front of the
code (`lsp_server.project_context`), in the model's repository format. A model
that never saw that format neither uses it nor knows where the current file
begins. So some FIM examples get the context the server would give at their
hole: each source is mirrored into a scratch directory (its kept, scrubbed
files only: nothing held out or unscrubbed can reach a prompt), indexed with
the server's `ProjectIndex`, and asked with `ProjectContext.gather`.

Most random holes do not need another file, so the model would rarely learn
to read the context; cross-file holes (the first use of a name another file
defines, cut by `lsp_server.holes.crossfile` as for the evaluation's cross-file
track) are those that do.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from lsp_server.holes.crossfile import RepositorySymbols, crossfile_holes, find_uses, symbols_under
from lsp_server.holes.parsed import parse_text
from lsp_server.languages import language_for_id
from lsp_server.project_context import ContextBudget, ProjectContext
from lsp_server.project_index import ProjectIndex
from lsp_server.templates import ContextFile

GATHER_SECONDS = 2.0
"""Per example; the server's limit is for typing speed, here the index is complete."""


class RepositoryContext:
    """Context for holes in the files of several sources, each its own workspace."""

    def __init__(self, files: Iterable[tuple[str, str]], tokens: int) -> None:
        """`files`: (path, text), a path's first component naming its source."""
        self._scratch = Path(tempfile.mkdtemp(prefix="inkling-context-"))
        self._budget = ContextBudget(
            tokens=tokens, definitions=True, buffers=False, recent=False, time_limit_s=GATHER_SECONDS
        )
        sources: set[str] = set()
        for path, text in files:
            if "#" in path or "/" not in path:  # code blocks of a document: no file to import
                continue
            target = self._scratch / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", errors="surrogatepass")
            sources.add(path.split("/", 1)[0])
        self._projects: dict[str, ProjectContext] = {}
        self._symbols: dict[tuple[str, str], RepositorySymbols] = {}
        for source in sorted(sources):
            index = ProjectIndex([self._scratch / source], max_files=20_000)
            index.crawl_now()
            self._projects[source] = ProjectContext(index)

    def __call__(
        self, path: str, language_id: str, text: str, start: int, end: int
    ) -> tuple[str, list[ContextFile]]:
        """(the file's path in its workspace, the context) for a hole text[start:end]."""
        project = self._projects.get(path.split("/", 1)[0])
        if project is None or "#" in path:
            return "", []
        file_path = (self._scratch / path).resolve()
        around = text[:start] + text[end:]  # the buffer, as the editor has it: the hole is not written yet
        project.note_open(file_path, language_id, around)
        try:
            found = project.gather(file_path, language_for_id(language_id), around, start, self._budget)
        finally:
            project.note_close(file_path)
        return project.display(file_path), found

    def crossfile_holes(
        self, path: str, language: str, text: str, rng: random.Random
    ) -> list[tuple[int, int]]:
        """Lines whose first use of a name only another file of the source defines: the line's
        code, or its rest from the name."""
        source = path.split("/", 1)[0]
        file = parse_text(language, text) if source in self._projects and "#" not in path else None
        if file is None:
            return []
        if (source, language) not in self._symbols:
            self._symbols[source, language] = symbols_under(self._scratch / source, language)
        uses = find_uses(file, str(self._scratch / path), self._symbols[source, language])
        return [(hole.start, hole.end) for hole, _ in crossfile_holes(file, uses, rng)]

    def close(self) -> None:
        for project in self._projects.values():
            project.index.stop()
        shutil.rmtree(self._scratch, ignore_errors=True)
