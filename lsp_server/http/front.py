"""What every HTTP endpoint shares: a request in Inkling's terms, run on the service
with the client's own supersede rule, stopped when the client hangs up."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from lsp_server.context import Mode
from lsp_server.errors import InklingError, ModelNotReadyError, RequestCancelledError
from lsp_server.http.errors import HttpError
from lsp_server.http.metrics import Metrics
from lsp_server.http.registry import ModelRegistry, UnknownModelError
from lsp_server.http.usage import UsageLog
from lsp_server.languages import language_for_path, lsp_language_id_for_path
from lsp_server.model_slot import ModelState
from lsp_server.pipeline import Completion, CompletionRequest, Status
from lsp_server.service import CompletionService
from lsp_server.settings import Settings
from lsp_server.templates import ContextFile

log = logging.getLogger(__name__)

MAX_PREDICT = 1024
"""The most tokens a request may ask for (n_predict, max_tokens)."""
DISCONNECT_POLL_S = 0.05


@dataclass(frozen=True)
class Ask:
    """One HTTP request in Inkling's terms."""

    prefix: str
    suffix: str
    client: str
    filename: str = ""
    extra: tuple[ContextFile, ...] | None = None
    max_tokens: int | None = None
    """None: the server's settings; 0: evaluate the prompt only (llama.vim's cache warm-up)."""
    time_budget_ms: int | None = None
    stop: tuple[str, ...] = ()
    model: str | None = None
    """The model the request names (None: the server's default)."""
    choices: int = 1
    """Distinct completions asked for (OpenAI `n`): more than one is an explicit request,
    answered with alternatives (`CompletionRequest.explicit`)."""


@dataclass(frozen=True)
class Answer:
    completion: Completion
    text: str
    """The completion cut at the first stop string the client gave."""
    stopping_word: str = ""
    model: str = ""
    """The registered name of the model that answered."""
    alternatives: tuple[str, ...] = ()
    """The completion's alternatives, each cut at the client's stop strings too."""


class Front:
    """The models behind every endpoint, and the counters."""

    def __init__(
        self,
        registry: ModelRegistry,
        metrics: Metrics,
        *,
        max_pending: int = 32,
        usage: UsageLog | None = None,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.max_pending = max_pending
        self.usage = usage
        """Per-user counts kept across restarts (None: not kept, as in some tests)."""

    @property
    def model_name(self) -> str:
        """The default model's name."""
        return self.registry.default_name

    def model(self, requested: str | None) -> str:
        """The registered name a request means; 404 `model_not_found` for another."""
        try:
            return self.registry.canonical(requested)
        except UnknownModelError as exc:
            raise HttpError(404, str(exc), param="model", code="model_not_found") from exc

    def ready(self, name: str | None = None) -> CompletionService:
        """The model's service, loaded; else 503 (with Retry-After while it loads; its
        load begins on the first request that names it)."""
        service = self.registry.service(name or self.model_name)
        slot = service.slot
        if slot.state is ModelState.FAILED:
            raise HttpError(503, f"the model failed to load: {slot.error}")
        if service.pipeline is None:
            raise HttpError(503, "Loading model", retry_after=1)
        return service

    async def complete(self, ask: Ask, request: Request, endpoint: str) -> Answer:
        """Run `ask`; a client that closes the connection cancels it."""
        model = self.model(ask.model)
        service = self.ready(model)
        if service.scheduler.pending >= self.max_pending:
            raise HttpError(503, "too many requests are waiting; try again", retry_after=1)
        settings = self._settings(ask, service.settings)
        text = ask.prefix + ask.suffix
        language_id = _language_id(ask.filename, ask.extra)
        # Project context is what the client sent, never gathered here: the server's own files
        # and the buffers of an LSP session beside it are no HTTP client's to see.
        completion_request = CompletionRequest(
            text,
            len(ask.prefix),
            language_id,
            path=ask.filename,
            context=ask.extra or (),
            explicit=ask.choices > 1,
        )
        key = f"{ask.client}\0{ask.filename}"
        if ask.max_tokens == 0:
            await service.prefill_text(completion_request, client=ask.client, settings=settings)
            evaluated = Completion("", len(ask.prefix), Mode.SKIP, "prompt evaluated", Status.SKIPPED)
            return Answer(evaluated, "", model=model)
        task = asyncio.ensure_future(
            service.complete_text(completion_request, client=ask.client, cache_key=key, settings=settings)
        )
        watcher = asyncio.ensure_future(_cancel_on_disconnect(request, task))
        try:
            completion = await task
        except asyncio.CancelledError:
            log.info("client %s hung up: its request was cancelled", ask.client)
            self.metrics.disconnects.labels(endpoint).inc()
            raise
        except RequestCancelledError:
            completion = Completion("", len(ask.prefix), Mode.SKIP, "superseded", Status.CANCELLED)
        except ModelNotReadyError as exc:
            raise HttpError(503, str(exc), retry_after=1) from exc
        except InklingError as exc:
            raise HttpError(400, str(exc)) from exc
        finally:
            watcher.cancel()
        return _cut_at_stop(completion, ask.stop, model)

    @staticmethod
    def _settings(ask: Ask, settings: Settings) -> Settings:
        changes: dict[str, Any] = {}
        if ask.max_tokens is not None and ask.max_tokens > 0:
            changes["max_tokens_inline"] = changes["max_tokens_block"] = min(ask.max_tokens, MAX_PREDICT)
        if ask.time_budget_ms is not None and ask.time_budget_ms > 0:
            changes["time_budget_inline_ms"] = changes["time_budget_block_ms"] = ask.time_budget_ms
        if ask.choices > 1:
            changes["inline_suggestions"] = ask.choices
        return dataclasses.replace(settings, **changes) if changes else settings


async def _cancel_on_disconnect(request: Request, task: asyncio.Future[Any]) -> None:
    while not task.done():
        if await request.is_disconnected():
            task.cancel()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


def _language_id(filename: str, extra: Sequence[ContextFile] | None) -> str:
    """The file's language; without a name, the language most of the client's other
    files are in (llama.vim and llama.vscode do not send the current file's name)."""
    if filename:
        return lsp_language_id_for_path(filename)
    votes = Counter(
        lsp_language_id_for_path(item.path) for item in extra or () if language_for_path(item.path)
    )
    return votes.most_common(1)[0][0] if votes else "plaintext"


def _cut_at_stop(completion: Completion, stop: Iterable[str], model: str = "") -> Answer:
    """Cut at the earliest of the client's stop strings (llama.cpp's `stop`, OpenAI's), the
    alternatives too."""
    words = tuple(stop)
    text, word = _cut(completion.text, words)
    alternatives = tuple(_cut(other, words)[0] for other in completion.alternatives)
    return Answer(completion, text, word, model=model, alternatives=alternatives)


def _cut(text: str, stop: Sequence[str]) -> tuple[str, str]:
    """`text` up to the earliest stop string in it, and that string ("" if none)."""
    found = [(text.find(word), word) for word in stop if word and word in text]
    if not found:
        return text, ""
    at, word = min(found)
    return text[:at], word


def context_files(raw: Any) -> tuple[ContextFile, ...] | None:
    """`input_extra`: a list of `{filename, text}` (llama.cpp) or of strings (older llama.vim)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise HttpError(400, "input_extra must be a list of {filename, text}", param="input_extra")
    files: list[ContextFile] = []
    for item in raw:
        if isinstance(item, str):
            files.append(ContextFile("", item))
        elif isinstance(item, dict) and isinstance(item.get("text", ""), str):
            filename = item.get("filename", "")
            files.append(ContextFile(filename if isinstance(filename, str) else "", item.get("text", "")))
        else:
            raise HttpError(400, "input_extra must be a list of {filename, text}", param="input_extra")
    return tuple(files)


def stop_strings(raw: Any, param: str = "stop") -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return tuple(raw)
    raise HttpError(400, f"{param} must be a string or a list of strings", param=param)


def number(body: dict[str, Any], key: str, default: int | None = None) -> int | None:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HttpError(400, f"{key} must be a number", param=key)
    return int(value)
