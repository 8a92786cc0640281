"""The one place the completion flow is written: context -> prompt -> engine -> postprocess.

The server, `inkling complete`, `inkling eval` and `inkling bench` all call
`Pipeline.complete`, so what is measured is what users get.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from lsp_server import syntax
from lsp_server.context import CompletionContext, Mode, build_context, first_statement_end, stop_cut
from lsp_server.documents import looks_binary
from lsp_server.generator import INCOMPLETE, CancelToken, Candidate, Generation, GenerationRequest, Generator
from lsp_server.languages import LanguageSpec, language_for_id
from lsp_server.postprocess import Finished, finish
from lsp_server.project_context import ContextBudget, ProjectContext, within_budget
from lsp_server.prompt import Budget, Prompt, build_prompt
from lsp_server.ranking import JUDGED_TOKENS
from lsp_server.settings import Settings
from lsp_server.templates import ContextFile, Order, Template, detect_template

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompletionRequest:
    """A request in domain terms: text, cursor (str index), language (resolved once, here)."""

    text: str
    offset: int
    language_id: str
    path: str = ""
    tree: syntax.Tree | None = None
    """The document's current parse tree, if the caller keeps one in step."""
    language: LanguageSpec | None = field(default=None, compare=False)
    """The grammar and rules for `language_id` (None: text rules only); looked up from
    `language_id` when not given."""
    context: tuple[ContextFile, ...] | None = None
    """Other files' text the client chose itself (HTTP `input_extra`), used instead of
    the project context the pipeline would gather; None: gather it."""
    explicit: bool = False
    """The user asked (a keybinding, cycling through suggestions; HTTP `n` > 1), so the
    answer may take the time of alternatives (`Settings.inline_suggestions`); else only
    those ranking decoded anyway come with it."""

    def __post_init__(self) -> None:
        if self.language is None:
            object.__setattr__(self, "language", language_for_id(self.language_id))


class Status(enum.Enum):
    """What became of a request (`Completion.reason` says why, in words)."""

    OFFERED = "offered"
    """Text to insert."""
    EMPTY = "empty"
    """The model ran; nothing usable came of it."""
    SKIPPED = "skipped"
    """Not a place to complete (the context rules, a binary file): no model was asked."""
    CANCELLED = "cancelled"
    """Superseded or cancelled before it finished."""
    CACHED = "cached"
    """Answered from the completion cache: the user typed what an earlier answer predicted."""


@dataclass(frozen=True)
class Completion:
    """What to insert at `offset`; `text` is empty when there is nothing to offer."""

    text: str
    offset: int
    mode: Mode
    reason: str
    status: Status
    generation: Generation | None = None
    steps: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()
    """A blank line's ranked candidates, `final` being what each would insert (the chosen
    one's is `text`, unless post-processing emptied it)."""
    truncated: bool = False
    """The prompt held only the end of the text before the cursor (it did not fit)."""
    alternatives: tuple[str, ...] = ()
    """Other distinct texts to insert instead of `text`, best first (at most
    `Settings.inline_suggestions` - 1)."""

    @property
    def empty(self) -> bool:
        return not self.text

    @property
    def items(self) -> tuple[str, ...]:
        """What the answer offers, best first: `text`, then the alternatives (none without text)."""
        return (self.text, *self.alternatives) if self.text else ()

    def led_by(self, text: str, limit: int) -> Completion:
        """This answer with `text` first (what the editor shows already, from the completion
        cache), then the others that differ from it: at most `limit` in all."""
        if not text or text == self.text:
            return self
        rest = distinct((self.text, *self.alternatives), besides=text)[: max(0, limit - 1)]
        return replace(self, text=text, alternatives=rest, status=Status.OFFERED)


class Pipeline:
    def __init__(self, engine: Generator, project: ProjectContext | None = None) -> None:
        self.engine = engine
        self.project = project
        self._template: Template | None = None

    @property
    def template(self) -> Template:
        """The prompt format, detected once from the loaded model's vocabulary."""
        if self._template is None:
            self._template = detect_template(self.engine.model)
            log.info("prompt template: %s (%s)", self._template.family, self._template.order)
        return self._template

    def context_for(self, request: CompletionRequest, settings: Settings) -> CompletionContext:
        return self._context_and_tree(request, settings)[0]

    @staticmethod
    def _context_and_tree(
        request: CompletionRequest, settings: Settings
    ) -> tuple[CompletionContext, syntax.Tree | None]:
        """The mode decision, and the tree it was made on (the parse check starts from it)."""
        language = request.language
        tree = request.tree
        if tree is None and language is not None:
            data = request.text.encode("utf-8", "surrogatepass")
            if len(data) <= settings.max_file_bytes:
                tree = syntax.parse(language, data)
        return build_context(request.text, request.offset, language, tree), tree

    def complete(
        self, request: CompletionRequest, settings: Settings, cancel: CancelToken | None = None
    ) -> Completion:
        started = time.perf_counter()
        cancel = cancel or CancelToken()
        if looks_binary(request.text):
            binary = "binary file (it contains NUL characters)"
            return Completion("", request.offset, Mode.SKIP, binary, Status.SKIPPED)
        context, tree = self._context_and_tree(request, settings)
        if context.mode is Mode.SKIP:
            return Completion("", request.offset, context.mode, context.reason, Status.SKIPPED)
        template = self.template
        model = self.engine.model
        budget, prompt = self._prompt(request, settings, context)
        max_tokens = budget.reserve
        whole: Prompt | None = None
        cold = settings.cold_start_tokens
        if cold and len(prompt.tokens) > 2 * cold and self.engine.uncached(prompt.tokens) > 2 * cold:
            # The KV cache holds little of this prompt (the model just loaded, a file just
            # opened, a jump to another function): answer from the text nearest the cursor
            # now and evaluate the whole prompt while the user reads the answer. A block
            # gets its first statement only: from little context a whole body rambles, and
            # the next request, with the whole prompt cached, writes the rest.
            whole = prompt
            quick = replace(
                budget,
                prefix_tokens=min(cold, budget.prefix_tokens),
                suffix_tokens=min(cold // 2, budget.suffix_tokens),
            )
            prompt = build_prompt(
                context, template, model, quick, path=request.path, order=self._order(settings)
            )
            log.info(
                "cold start: %d of %d prompt tokens now, the rest in the background",
                len(prompt.tokens),
                len(whole.tokens),
            )
        prompt_built = time.perf_counter()
        if settings.log_buffers:
            log.info("prompt for %s: %r", request.path, model.detokenize(prompt.tokens))
        first_statement_only = whole is not None and context.mode is Mode.BLOCK
        parses = _parse_check(context, tree)
        candidates = settings.line_candidates if whole is None and _writes_a_whole_line(context) else 1
        forks = settings.line_forks if candidates > 1 else 0
        # The candidates share the context's cells: each may write max_tokens, then be judged.
        if len(prompt.tokens) + (candidates + forks) * (max_tokens + JUDGED_TOKENS) > model.n_ctx:
            candidates, forks = 1, 0
        generated_most = settings.max_tokens_inline if first_statement_only else max_tokens
        alternatives = settings.inline_suggestions - 1 if request.explicit else 0
        if len(prompt.tokens) + (1 + alternatives) * generated_most > model.n_ctx:
            alternatives = 0
        budget_s = (
            settings.time_budget_block_ms
            if context.mode is Mode.BLOCK and not first_statement_only
            else settings.time_budget_inline_ms
        ) / 1000
        generation = self.engine.generate(
            GenerationRequest(
                prompt=prompt.tokens,
                max_tokens=generated_most,
                time_budget_s=budget_s,
                stop=lambda text: _healed_stop(
                    context, prompt, text, first_statement_only=first_statement_only
                ),
                stop_token_ids=prompt.stop_token_ids,
                forced_prefix=prompt.healed,
                forced_as_written=_heals_indentation(context.prefix, prompt.healed),
                start_on_line=context.mode is Mode.INLINE and template.is_fim and not prompt.healed,
                candidates=candidates,
                forks=forks,
                finalize=lambda raw, complete: _finalized(context, prompt, raw, complete, parses),
                judged_text=_text_below(context) if candidates > 1 else "",
                rank_below=settings.line_rank_below,
                alternatives=alternatives,
            ),
            cancel,
        )
        generated = time.perf_counter()
        if whole is not None and generation.finish_reason != "cancelled":
            self.engine.prefill(whole.tokens, after=cancel)
        timings = {
            "context_prompt": (prompt_built - started) * 1000,
            "prompt_eval": generation.prompt_ms,
            "generate": generation.generate_ms,
        }
        if generation.finish_reason == "cancelled":
            return Completion(
                "", request.offset, context.mode, "cancelled", Status.CANCELLED, generation, (), timings
            )
        body = prompt.unheal(generation.text)
        finished = finish(
            context, body or "", complete=generation.finish_reason not in INCOMPLETE, parses=parses
        )
        timings["postprocess"] = (time.perf_counter() - generated) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        if settings.log_buffers:
            log.info("raw completion %r -> %r", generation.text, finished and finished.text)
        result = _result(request, context, generation, finished, timings)
        ranked = tuple(replace(c, final=prompt.unheal(c.final) or "") for c in generation.candidates)
        truncated = len(prompt.prefix_text) + len(prompt.healed) < len(context.prefix)
        result = replace(result, candidates=ranked, truncated=truncated)
        return _with_alternatives(result, settings.inline_suggestions)

    def _prompt(
        self, request: CompletionRequest, settings: Settings, context: CompletionContext
    ) -> tuple[Budget, Prompt]:
        model = self.engine.model
        budget = Budget(
            prefix_tokens=settings.prefix_tokens,
            suffix_tokens=settings.suffix_tokens,
            n_ctx=model.n_ctx,
            reserve=settings.max_tokens_block if context.mode is Mode.BLOCK else settings.max_tokens_inline,
        )
        extra = self.project_context(request, settings)
        path = self.project.display(Path(request.path)) if self.project and request.path else request.path
        return budget, build_prompt(
            context, self.template, model, budget, path=path, extra=extra, order=self._order(settings)
        )

    def _order(self, settings: Settings) -> Order | None:
        """The layout the settings ask for, where the model has one to choose."""
        if not self.template.is_fim:
            return None
        if settings.fim_order == "psm":
            return "psm"
        if settings.fim_order == "spm":
            return "spm"
        return None

    def warm(self, request: CompletionRequest, settings: Settings, cancel: CancelToken) -> bool:
        """Evaluate this request's prompt into the KV cache in the background, without
        generating: after an answer from the completion cache the model is idle, and the
        next keystroke's prompt differs from this one by a token or two (or not at all),
        so that request then costs its generation only. False: nothing to evaluate."""
        if cancel.cancelled or looks_binary(request.text):
            return False
        context, _ = self._context_and_tree(request, settings)
        if context.mode is Mode.SKIP:
            return False
        _, prompt = self._prompt(request, settings, context)
        return not cancel.cancelled and self.engine.prefill(prompt.tokens) is not None

    def project_context(self, request: CompletionRequest, settings: Settings) -> list[ContextFile]:
        """Other files' text for this request's prompt (none without a project)."""
        if settings.context_tokens <= 0:
            return []
        if request.context is not None:
            return within_budget(request.context, settings.context_tokens)
        if self.project is None or not request.path:
            return []
        return self.project.gather(
            Path(request.path),
            request.language,
            request.text,
            request.offset,
            ContextBudget.from_settings(settings),
        )


def distinct(texts: Iterable[str], besides: str = "") -> tuple[str, ...]:
    """`texts` in order without repeats, empty ones, or `besides`."""
    return tuple(dict.fromkeys(t for t in texts if t and t != besides))


def _with_alternatives(completion: Completion, limit: int) -> Completion:
    """The candidates' other texts, best score first, as `alternatives` (at most `limit` items
    in all). Where the answer is empty and a candidate is not, the best such comes first."""
    ordered = sorted(completion.candidates, key=lambda c: c.score, reverse=True)
    others = distinct((c.final for c in ordered), besides=completion.text)
    if not others or (limit <= 1 and completion.text):
        return completion
    if completion.text:
        return replace(completion, alternatives=others[: limit - 1])
    return replace(
        completion,
        text=others[0],
        alternatives=others[1:limit],
        status=Status.OFFERED,
        reason=f"{completion.reason}; the best alternative instead",
    )


def _writes_a_whole_line(context: CompletionContext) -> bool:
    """A blank line asked for its code: where candidates are ranked (`lsp_server.ranking`)."""
    return context.mode is Mode.INLINE and not context.line_prefix.strip() and not context.line_suffix.strip()


def _text_below(context: CompletionContext, lines: int = 3, most_chars: int = 400) -> str:
    """The end of the cursor line and the lines after it, which judge a candidate line."""
    return "".join(context.suffix.splitlines(keepends=True)[:lines])[:most_chars]


def _finalized(
    context: CompletionContext, prompt: Prompt, raw: str, complete: bool, parses: ParseCheckFn | None
) -> str | None:
    """What a candidate would insert, in the generated text's terms (healed text first)."""
    finished = finish(context, prompt.unheal(raw) or "", complete=complete, parses=parses)
    return prompt.healed + finished.text if finished else None


def _heals_indentation(prefix: str, healed: str) -> bool:
    """Whether the healed text is the whole indentation of the cursor's line."""
    if not healed or healed.strip():
        return False
    before = prefix[: len(prefix) - len(healed)]
    return before == "" or before.endswith(("\n", "\r"))


def _healed_stop(
    context: CompletionContext, prompt: Prompt, text: str, *, first_statement_only: bool = False
) -> int | None:
    """The stop rule, applied to what follows the healed whitespace; `first_statement_only`
    also ends after the first complete statement."""
    body = prompt.unheal(text)
    if body is None:
        return None  # still writing the healed text (the engine keeps it consistent)
    cut = stop_cut(context, body)
    if first_statement_only:
        end = first_statement_end(body)
        if end is not None and (cut is None or end < cut):
            cut = end
    return None if cut is None else cut + len(prompt.healed)


def _parse_check(context: CompletionContext, tree: syntax.Tree | None) -> ParseCheckFn | None:
    language = context.language
    if language is None:
        return None
    if tree is None:  # no tree for this request: only when the file is over maxFileBytes
        return None
    return _ParseCheck(language, context, tree)


class _ParseCheck:
    """Counts tree-sitter errors in the file with a candidate inserted.

    Each candidate is an insertion at the cursor into a file whose tree is at
    hand, so the count comes from an incremental reparse of a copy of that
    tree: a fraction of a millisecond where a full parse of a few hundred lines
    takes one or two, and the check runs for every candidate of every request."""

    def __init__(self, language: LanguageSpec, context: CompletionContext, tree: syntax.Tree) -> None:
        self.language = language
        self.tree = tree
        self.baseline = syntax.error_count(tree.root_node)
        self._prefix = context.prefix.encode("utf-8", "surrogatepass")
        self._suffix = context.suffix.encode("utf-8", "surrogatepass")
        line_start = self._prefix.rfind(b"\n") + 1
        self._start_point = (context.prefix.count("\n"), len(self._prefix) - line_start)
        self._counts: dict[str, tuple[int, int]] = {}

    def __call__(self, candidate: str) -> int:
        return self._count(candidate)[0]

    def errors_from_cursor(self, candidate: str) -> int:
        return self._count(candidate)[1]

    def _count(self, candidate: str) -> tuple[int, int]:
        """All errors and those from the cursor on, counted once per candidate: post-processing
        asks about the same text more than once (its errors, closing variants, where they are)."""
        counts = self._counts.get(candidate)
        if counts is None:
            root = self._reparse(candidate).root_node
            counts = (syntax.error_count(root), syntax.error_count(root, from_byte=len(self._prefix)))
            self._counts[candidate] = counts
        return counts

    def _reparse(self, candidate: str) -> syntax.Tree:
        inserted = candidate.encode("utf-8", "surrogatepass")
        start = len(self._prefix)
        row, column = self._start_point
        last_newline = inserted.rfind(b"\n")
        if last_newline < 0:
            end_point = (row, column + len(inserted))
        else:
            end_point = (row + inserted.count(b"\n"), len(inserted) - last_newline - 1)
        edited = self.tree.copy()
        syntax.edit_tree(edited, start, start, start + len(inserted), (row, column), (row, column), end_point)
        return syntax.parse(self.language, self._prefix + inserted + self._suffix, edited)


ParseCheckFn = _ParseCheck


def _result(
    request: CompletionRequest,
    context: CompletionContext,
    generation: Generation,
    finished: Finished | None,
    timings: dict[str, float],
) -> Completion:
    if finished is None:
        nothing = "nothing useful generated"
        return Completion("", request.offset, context.mode, nothing, Status.EMPTY, generation, (), timings)
    return Completion(
        finished.text,
        request.offset,
        context.mode,
        context.reason,
        Status.OFFERED if finished.text else Status.EMPTY,
        generation,
        finished.steps,
        timings,
    )
