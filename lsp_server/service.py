"""The completion service: what every front end calls, whatever protocol it speaks.

It owns the open buffers, the completion cache, the scheduler (the latest
request wins), the project context and the model slot, and runs a request
from a cursor in a buffer to a `Completion`. Front ends (the LSP handlers in
`server.py`; next, HTTP and `inkling complete`) convert their protocol's types
to these calls and turn the `InklingError`s raised here into messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsp_server.completion_cache import CompletionCache
from lsp_server.context import Mode
from lsp_server.documents import DocumentSnapshot, DocumentStore
from lsp_server.early_load import EarlyLoad
from lsp_server.errors import DocumentError, ModelNotReadyError, RequestCancelledError
from lsp_server.generator import CancelToken
from lsp_server.model_slot import ModelSlot
from lsp_server.pipeline import Completion, CompletionRequest, Pipeline, Status
from lsp_server.project_context import ProjectContext
from lsp_server.project_index import ProjectIndex
from lsp_server.scheduler import Scheduler
from lsp_server.settings import Settings

log = logging.getLogger(__name__)

Change = tuple[str, tuple[int, int] | None, tuple[int, int] | None]
"""One content change: new text, and the (line, character) range it replaces (None: all)."""


@dataclass(frozen=True)
class Answer:
    """A completion, and the buffer version it was made for (its positions' frame)."""

    completion: Completion
    document: DocumentSnapshot


class CompletionService:
    """One client session's completion state (thread-safe where the scheduler needs it)."""

    def __init__(self, settings: Settings, early_load: EarlyLoad | None = None) -> None:
        self.settings = settings
        """Replaced by the front end when the client's settings change."""
        self.documents = DocumentStore()
        self.scheduler = Scheduler()
        self.cache = CompletionCache()
        self.index = ProjectIndex()
        self.project = ProjectContext(self.index)
        self.slot = ModelSlot(early_load)
        self.last_latency_ms: float | None = None
        self._pipeline: Pipeline | None = None
        self._noted_cursor: dict[str, int] = {}
        self._noted_edit: dict[str, int] = {}

    # -- the model -------------------------------------------------------------

    @property
    def pipeline(self) -> Pipeline | None:
        """The pipeline over the loaded model; None while loading or after a failure."""
        engine = self.slot.engine
        if engine is None:
            return None
        pipeline = self._pipeline
        if pipeline is None or pipeline.engine is not engine:
            pipeline = self._pipeline = Pipeline(engine, self.project)
        return pipeline

    def load_model(self, on_progress: Callable[[float], None], on_done: Callable[[ModelSlot], None]) -> None:
        """(Re)load the model the current settings ask for; work in flight is cancelled. When
        that model is loaded or loading already (the HTTP front door of the same process asked
        first), `on_done` waits for it instead: one model in memory, nothing cancelled."""
        if self.slot.join(self.settings, on_done):
            return
        self.scheduler.cancel_all("model reload")
        self._pipeline = None
        self.slot.load(self.settings, on_progress, on_done)

    def stop(self) -> None:
        """Cancel every generation, stop indexing and free the model."""
        self.index.stop()
        self.scheduler.close()
        self._pipeline = None
        self.slot.close()

    # -- buffers ---------------------------------------------------------------

    def open(self, uri: str, language_id: str, version: int, text: str) -> None:
        self.documents.open(uri, language_id, version, text)
        self.project.note_open(Path(uri_to_path(uri)), language_id, text)

    def change(self, uri: str, version: int, changes: Sequence[Change], encoding: str) -> None:
        """Apply an edit (raises DocumentError when it cannot be applied: the buffer is
        then out of step until reopened) and keep project context in step with it."""
        self.documents.change(uri, version, list(changes), encoding)
        self._note_edit(uri, _edited_line(changes))

    def close(self, uri: str) -> None:
        self.documents.close(uri)
        self.cache.forget(uri)
        self.project.note_close(Path(uri_to_path(uri)))
        self._noted_cursor.pop(uri, None)
        self._noted_edit.pop(uri, None)

    def lost_edit(self, uri: str, reason: str) -> bool:
        """An edit the front end could not read: False if `uri` is not open."""
        return self.documents.mark_out_of_sync(uri, f"an edit could not be read ({reason})")

    # -- completion ------------------------------------------------------------

    async def complete(
        self, uri: str, line: int, character: int, encoding: str, *, explicit: bool = False
    ) -> Answer | None:
        """A completion at a cursor in an open buffer; None when there is nothing to offer
        (language off, model not ready, cancelled, nothing useful, buffer changed meanwhile).
        `explicit`: the user asked (`CompletionRequest.explicit`). Raises DocumentError and
        the pipeline's other InklingErrors for the user to see."""
        settings = self.settings
        snapshot = self.documents.snapshot(uri)
        if not settings.language_enabled(snapshot.language_id) or self.pipeline is None:
            return None  # off for this language; or still loading, or failed (the user was told)
        offset = snapshot.offset_at(line, character, encoding)
        path = uri_to_path(uri)
        self._note_cursor(uri, path, snapshot.text, line)

        def request() -> CompletionRequest:
            tree = self.documents.syntax_tree_at(uri, snapshot.version, settings.max_file_bytes)
            return CompletionRequest(
                snapshot.text,
                offset,
                snapshot.language_id,
                path=path,
                tree=tree,
                language=snapshot.language,
                explicit=explicit,
            )

        try:
            completion = await self._complete(request, snapshot.text, offset, uri, "", settings, explicit)
        except (RequestCancelledError, ModelNotReadyError):
            return None
        if completion.empty or completion.status is Status.CANCELLED:
            return None
        if completion.status is not Status.CACHED and self.documents.version(uri) != snapshot.version:
            # The buffer changed while this was generated: its range would land in the
            # wrong place. Editors ask again after a change; this answer is dropped
            # (the cache keeps it, should the user's typing match it).
            log.debug("dropped a completion for %s: the buffer changed meanwhile", uri)
            return None
        return Answer(completion, snapshot)

    async def complete_text(
        self, request: CompletionRequest, *, client: str, cache_key: str, settings: Settings | None = None
    ) -> Completion:
        """A completion for text that is not an open buffer (HTTP): `client`'s newer request
        supersedes this one, others' do not; `cache_key` names the file for the completion
        cache. Raises ModelNotReadyError while the model loads, RequestCancelledError when
        superseded, and the pipeline's other InklingErrors."""
        settings = settings or self.settings
        if self.pipeline is None:
            raise ModelNotReadyError(self.slot.error or f"the model is {self.slot.state.value}")
        return await self._complete(
            lambda: request, request.text, request.offset, cache_key, client, settings, request.explicit
        )

    async def prefill_text(self, request: CompletionRequest, *, client: str, settings: Settings) -> bool:
        """Evaluate a request's prompt into the cache without generating (a client warming
        the cache for what it will ask next); False when there was nothing to evaluate."""
        pipeline = self.pipeline
        if pipeline is None:
            raise ModelNotReadyError(self.slot.error or f"the model is {self.slot.state.value}")
        _, future = self.scheduler.submit(lambda cancel: pipeline.warm(request, settings, cancel), client)
        try:
            return await asyncio.wrap_future(future)
        except RequestCancelledError:
            return False

    async def _complete(
        self,
        request: Callable[[], CompletionRequest],
        text: str,
        offset: int,
        cache_key: str,
        client: str,
        settings: Settings,
        explicit: bool = False,
    ) -> Completion:
        """The completion cache, else the pipeline on the scheduler's thread. An explicit
        request always asks the pipeline (for alternatives), and an answer the cache holds
        for this place, which the editor may be showing, stays first."""
        pipeline = self.pipeline
        if pipeline is None:
            raise ModelNotReadyError("the model is not loaded")
        started = time.perf_counter()
        prefix, suffix = text[:offset], text[offset:]
        cached = self.cache.lookup(cache_key, prefix, suffix, count=not explicit)
        if cached is not None and not explicit:
            # The user typed what the completion predicted: no model needed. The idle
            # model evaluates this document's prompt meanwhile (superseded by the next
            # request like any job), so that the next keystroke's request finds it cached.
            _, warming = self.scheduler.submit(
                lambda cancel: pipeline.warm(request(), settings, cancel), client
            )
            warming.add_done_callback(_log_failure)
            self.last_latency_ms = (time.perf_counter() - started) * 1000
            mode = Mode.BLOCK if "\n" in cached else Mode.INLINE
            return Completion(cached, offset, mode, "typed into an earlier answer", Status.CACHED)

        def job(cancel: CancelToken) -> Completion:
            return pipeline.complete(request(), settings, cancel)

        token, future = self.scheduler.submit(job, client)
        try:
            completion = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            token.cancel("cancelled by the client", finish_batch=True)
            raise
        if completion.status is not Status.CANCELLED:
            self.last_latency_ms = (time.perf_counter() - started) * 1000
            if cached is not None:
                completion = completion.led_by(cached, settings.inline_suggestions)
        if not completion.empty:
            self.cache.store(cache_key, prefix, suffix, completion.text)
        return completion

    def engine_counters(self) -> dict[str, float] | None:
        """The engine's running totals (requests, tokens, seconds), for `inkling bench`."""
        engine = self.slot.engine
        if engine is None:
            return None
        stats = engine.stats
        return {
            "requests": stats.requests,
            "cancelled": stats.cancelled,
            "promptTokens": stats.prompt_tokens,
            "reusedTokens": stats.reused_tokens,
            "shiftedTokens": stats.shifted_tokens,
            "prefills": stats.prefills,
            "prefillTokens": stats.prefill_tokens,
            "generatedTokens": stats.generated_tokens,
            "promptSeconds": stats.prompt_seconds,
            "generateSeconds": stats.generate_seconds,
            "loadSeconds": stats.load_seconds,
        }

    # -- project context -------------------------------------------------------

    def _note_edit(self, uri: str, line: int | None) -> None:
        """Keep project context in step with an edited buffer: its text at every
        keystroke (definitions are read again only when needed), the edited region
        once per line (None: the whole buffer was replaced)."""
        try:
            snapshot = self.documents.snapshot(uri)
        except DocumentError:
            return  # out of step: the user was told when the edit failed
        path = Path(uri_to_path(uri))
        if line is None or self._noted_edit.get(uri) == line:
            self.project.note_text(path, snapshot.language_id, snapshot.text)
            return
        self._noted_edit[uri] = line
        self.project.note_change(path, snapshot.language_id, snapshot.text, line)

    def _note_cursor(self, uri: str, path: str, text: str, line: int) -> None:
        """Remember where the user asks for completions (once per line)."""
        if self._noted_cursor.get(uri) != line:
            self._noted_cursor[uri] = line
            self.project.note_cursor(Path(path), text, line)


def uri_to_path(uri: str) -> str:
    """A file URI's path; any other URI as it is (an unsaved buffer has no path)."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _edited_line(changes: Sequence[Change]) -> int | None:
    """The line where the last change ends (None for a whole-text change)."""
    if not changes:
        return None
    text, start, _ = changes[-1]
    if start is None:
        return None
    return start[0] + text.count("\n")


def _log_failure(future: Future[Any]) -> None:
    """For background jobs: a failure the next request will meet and report is logged."""
    error = future.exception()
    if error is not None and not isinstance(error, RequestCancelledError | ModelNotReadyError):
        lines = str(error).strip().splitlines()
        log.warning("background prompt evaluation failed: %s", lines[0] if lines else type(error).__name__)
