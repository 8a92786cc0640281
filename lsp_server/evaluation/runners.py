"""Ways to answer a task: our pipeline in-process, the real server over stdio, a naive baseline.

Each runner turns a Task into an Answer with the text to insert and how long it
took. The in-process runner and the baseline share one loaded Engine (the same
model in the same run), and both start every task from an empty KV cache, so
their latencies compare like for like: a cold request for a file just opened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lsp_server.context import Mode
from lsp_server.documents import Document
from lsp_server.engine import Engine
from lsp_server.errors import InklingError
from lsp_server.evaluation.tasks import HoleKind, Task
from lsp_server.generator import GenerationRequest
from lsp_server.pipeline import CompletionRequest, Pipeline
from lsp_server.project_context import ProjectContext
from lsp_server.project_index import ProjectIndex
from lsp_server.remote import RemoteGenerator
from lsp_server.settings import Settings
from lsp_server.templates import ContextFile


@dataclass(frozen=True)
class Answer:
    text: str
    latency_ms: float
    mode: str = ""
    """What context.py decided at the cursor (inline, block, skip); the baseline has none."""
    reason: str = ""
    finish_reason: str = ""
    steps: tuple[str, ...] = ()
    """Post-processing steps that changed the text."""
    raw: str = ""
    """What the model generated before post-processing."""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    context_files: tuple[str, ...] = ()
    """Project context put in front of the prompt (paths relative to the workspace)."""
    definition_in_context: bool | None = None
    """Cross-file tasks with project context: the defining file's signature of the needed name was there."""
    candidates: tuple[dict[str, Any], ...] = ()
    """A blank line's ranked candidates: what each would insert, its log-probability and
    that of the lines below it (`lsp_server.ranking`), to see what a better judge would win."""

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["steps"] = list(self.steps)
        record["context_files"] = list(self.context_files)
        record["candidates"] = list(self.candidates)
        return record


class Runner(Protocol):
    name: str

    def run(self, task: Task) -> Answer: ...

    def close(self) -> None: ...


def clear_cache(engine: Engine | RemoteGenerator) -> None:
    """Start the next request from an empty KV cache (the engine clears it after the job)."""
    if isinstance(engine, Engine):
        engine.run_on_engine_thread(lambda model: None).result()
    else:
        engine.clear_cache()


class PipelineRunner:
    """Ours: `Pipeline.complete`, exactly what the server runs for a request."""

    def __init__(self, engine: Engine | RemoteGenerator, settings: Settings, name: str = "ours") -> None:
        self.pipeline = Pipeline(engine)
        self.engine = engine
        self.settings = settings
        self.name = name

    def run(self, task: Task) -> Answer:
        return self._complete(CompletionRequest(task.text, task.offset, task.lsp_language_id, path=task.path))

    def _complete(self, request: CompletionRequest) -> Answer:
        clear_cache(self.engine)
        started = time.perf_counter()
        try:
            completion = self.pipeline.complete(request, self.settings)
        except Exception as exc:  # recorded per task and counted; one bad task must not end a long run
            return Answer("", (time.perf_counter() - started) * 1000, error=_describe(exc))
        latency = (time.perf_counter() - started) * 1000
        generation = completion.generation
        return Answer(
            text=completion.text,
            latency_ms=latency,
            mode=completion.mode.value,
            reason=completion.reason,
            finish_reason=generation.finish_reason if generation else "",
            steps=completion.steps,
            raw=generation.text if generation else "",
            prompt_tokens=generation.prompt_tokens if generation else 0,
            generated_tokens=generation.generated_tokens if generation else 0,
            timings_ms={k: round(v, 2) for k, v in completion.timings_ms.items()},
            candidates=tuple(
                {
                    "text": c.final,
                    "logprob": round(c.logprob, 4),
                    "tokens": c.tokens,
                    "judged": round(c.judged, 4),
                    "judged_tokens": c.judged_tokens,
                    "first_logprob": round(c.first_logprob, 4),
                }
                for c in completion.candidates
            ),
        )

    def close(self) -> None:
        return None


class ProjectRunner(PipelineRunner):
    """Ours with project context, as the server gives it for the task's file opened in its
    repository (`Workspaces`)."""

    def __init__(self, engine: Engine | RemoteGenerator, settings: Settings, name: str = "project") -> None:
        super().__init__(engine, settings, name)
        self.workspaces = Workspaces()

    def run(self, task: Task) -> Answer:
        if not task.repository:  # a file under no corpus root (--source FILE): no workspace
            return super().run(task)
        path, project = self.workspaces.open(task)
        self.pipeline.project = project
        request = CompletionRequest(task.text, task.offset, task.lsp_language_id, path=str(path))
        try:
            answer = self._complete(request)
            # The selection is cached per window, so this is what the prompt got.
            files = self.pipeline.project_context(request, self.settings)
        finally:
            project.note_close(path)
            self.pipeline.project = None
        return dataclasses.replace(
            answer,
            context_files=tuple(f.path for f in files),
            definition_in_context=holds_definition(task, files),
        )


class Workspaces:
    """Each task's repository as the workspace, its index crawled to the end (the server
    crawls in the background from `initialize`), kept for the tasks that follow."""

    def __init__(self) -> None:
        self._indexes: dict[Path, ProjectIndex] = {}

    def index_for(self, root: Path) -> ProjectIndex:
        index = self._indexes.get(root)
        if index is None:
            index = self._indexes[root] = ProjectIndex([root])
            index.crawl_now()
        return index

    def open(self, task: Task) -> tuple[Path, ProjectContext]:
        """The task's file opened in a fresh `ProjectContext` (close it with `note_close`)."""
        if not task.repository:
            raise InklingError(f"task {task.id} names no repository: project context needs one")
        path = Path(task.path).resolve()  # as the index sees its files: symlinks resolved
        project = ProjectContext(self.index_for(Path(task.repository).resolve()))
        project.note_open(path, task.lsp_language_id, task.text)
        return path, project


def holds_definition(task: Task, files: Sequence[ContextFile]) -> bool:
    """Whether the context shows the definition the hole's answer names."""
    return any(
        f.path == task.definition and any(re.search(rf"\b{re.escape(name)}\b", f.text) for name in task.names)
        for f in files
    )


def shows_answer(task: Task, files: Sequence[ContextFile]) -> bool:
    """Whether the context holds the hole's text as it is (a sibling file's twin line)."""
    answer = task.expected.strip()
    return bool(answer) and any(answer in f.text for f in files)


NO_TIME_LIMIT_S = 600.0


class BaselineRunner:
    """What most tools ship: the last `prefix_tokens` tokens of the prefix, greedy,
    stop at the first newline (blocks: a fixed token count), no post-processing."""

    name = "baseline"

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def run(self, task: Task) -> Answer:
        clear_cache(self.engine)
        model = self.engine.model
        block = task.kind in (HoleKind.BLOCK, HoleKind.COMMENT_CODE)
        max_tokens = self.settings.max_tokens_block if block else self.settings.max_tokens_inline
        started = time.perf_counter()
        room = max(1, min(self.settings.prefix_tokens, model.n_ctx - max_tokens - 8))
        bos = [model.bos_id] if model.add_bos and model.bos_id >= 0 else []
        prompt = bos + model.tokenize(task.prefix)[-room:]
        try:
            generation = self.engine.submit(
                GenerationRequest(
                    prompt=prompt,
                    max_tokens=max_tokens,
                    time_budget_s=NO_TIME_LIMIT_S,
                    stop=None if block else _first_newline,
                )
            ).result()
        except Exception as exc:  # as above
            return Answer("", (time.perf_counter() - started) * 1000, error=_describe(exc))
        return Answer(
            text=generation.text,
            latency_ms=(time.perf_counter() - started) * 1000,
            finish_reason=generation.finish_reason,
            raw=generation.text,
            prompt_tokens=generation.prompt_tokens,
            generated_tokens=generation.generated_tokens,
            timings_ms={
                "prompt_eval": round(generation.prompt_ms, 2),
                "generate": round(generation.generate_ms, 2),
            },
        )

    def close(self) -> None:
        return None


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, InklingError) else f"{type(exc).__name__}: {exc}"


def _first_newline(text: str) -> int | None:
    index = text.find("\n")
    return index if index >= 0 else None


class LspRunner:
    """Ours through `inkling serve` over stdio: open the file with the hole, ask
    for an inline completion at the cursor, close it."""

    name = "lsp"

    def __init__(self, initialization_options: dict[str, Any], *, log_path: Path | None = None) -> None:
        from lsp_server.lsp_client import InklingClient

        self._loop = asyncio.new_event_loop()
        self._log = log_path.open("w", encoding="utf-8") if log_path else None
        self.client = InklingClient(stderr=self._log)
        self.status: dict[str, Any] = {}
        self._loop.run_until_complete(self._start(initialization_options))

    async def _start(self, options: dict[str, Any]) -> None:
        await self.client.start(initialization_options=options)
        self.status = await self.client.wait_ready()
        if self.status.get("state") != "ready":
            raise InklingError(f"the server did not load the model: {self.status.get('error')}")

    def run(self, task: Task) -> Answer:
        return self._loop.run_until_complete(self._run(task))

    async def _run(self, task: Task) -> Answer:
        uri = Path(task.path).as_uri()
        line, character = Document(uri, task.lsp_language_id, 0, task.text).position_at(task.offset, "utf-16")
        self.client.open(uri, task.lsp_language_id, task.text)
        started = time.perf_counter()
        try:
            text = await asyncio.wait_for(self.client.inline(uri, line, character), timeout=NO_TIME_LIMIT_S)
            error = None
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            text, error = "", f"{type(exc).__name__}: {exc}"
        latency = (time.perf_counter() - started) * 1000
        self.client.close(uri)
        return Answer(text=text, latency_ms=latency, error=error)

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self.client.stop())
        finally:
            self._loop.close()
            if self._log is not None:
                self._log.close()


def context_of(pipeline: Pipeline, task: Task, settings: Settings) -> tuple[Mode, str]:
    """How context.py classifies the task's cursor (for runners that do not report it)."""
    request = CompletionRequest(task.text, task.offset, task.lsp_language_id, path=task.path)
    context = pipeline.context_for(request, settings)
    return context.mode, context.reason
