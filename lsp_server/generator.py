"""What the pipeline needs from an engine, and what an engine gives back.

`Pipeline` depends on this protocol only: the in-process llama.cpp engine
(`engine.Engine`) implements it, so does the benchmark's floor
(`bench.floor.FloorGenerator`), and the unit tests' fake generator. Remote
engines (a llama.cpp server, an OpenAI-compatible server) are the next ones.
Nothing here imports llama.cpp.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal, Protocol

from lsp_server.prompt import Tokenizer
from lsp_server.templates import Vocabulary

FinishReason = Literal["stop", "eos", "length", "budget", "cancelled", "context"]
INCOMPLETE: frozenset[FinishReason] = frozenset({"budget", "length", "context"})
"""Reasons that cut a completion short of where it meant to end."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt: Sequence[int]
    max_tokens: int
    time_budget_s: float = 10.0
    stop: Callable[[str], int | None] | None = None
    """Called with the text so far; returns where to cut it to stop, or None."""
    stop_token_ids: frozenset[int] = frozenset()
    forced_prefix: str = ""
    """Text the completion must start with (token healing): the first tokens are
    the most likely ones consistent with it, not simply the most likely."""
    forced_as_written: bool = False
    """Force `forced_prefix` as the tokenizer writes it, not as any tokens that agree
    with it: for healed indentation, which training renders as one run of spaces (split
    in two, the model reads a deeper indentation and answers with more spaces)."""
    start_on_line: bool = False
    """The first token may not end the completion or begin with a line break: when
    finishing a line, an answer that starts on the next line is cut to nothing."""
    candidates: int = 1
    """Completions to decode side by side and judge (`lsp_server.ranking`); 1: greedy."""
    forks: int = 0
    """Ranking: at most this many more candidates, each branched off one where its next
    token was a near tie."""
    finalize: Callable[[str, bool], str | None] | None = None
    """Ranking: what a candidate would insert, given its text and whether it ended by
    itself (post-processed, healed text included); None or "": nothing usable."""
    judged_text: str = ""
    """Ranking: the text after the hole, whose likelihood after each candidate judges it."""
    rank_below: float = 1.0
    """Ranking: only where the most likely first token's share of the candidates' first
    tokens' probability is below this (the greedy line is unsure of its start); at or
    above it the greedy line is written alone, in the time of one line. 1.0: always rank."""
    alternatives: int = 0
    """Besides the answer, decode up to this many other completions, each starting with
    another of the most likely tokens where the decoding rule first chooses (a different
    text, not the same one split otherwise) and continued by the rule, side by side after
    the answer. The answer stays what the rule writes; all come back in
    `Generation.candidates`, the answer's first. Where ranking runs (`candidates`), its
    candidates are the alternatives. A generator that cannot branch ignores this."""


@dataclass(frozen=True)
class Candidate:
    text: str
    """As generated (healed text included), cut where the stop rule cut it."""
    final: str
    """What it would insert, post-processed ("" if nothing usable)."""
    logprob: float
    judged: float
    """Log-probability of the text after the hole, read after `final`."""
    reason: FinishReason
    tokens: int = 0
    """Tokens generated (whose log-probabilities `logprob` adds up)."""
    judged_tokens: int = 0
    """Tokens of the text after the hole that `judged` adds up (0: not judged)."""
    first_logprob: float = 0.0
    """Log-probability of its first token after the forced text (0.0 for a fork)."""

    @property
    def score(self) -> float:
        return self.logprob + self.judged


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    reused_tokens: int
    generated_tokens: int
    prompt_ms: float
    generate_ms: float
    token_ids: tuple[int, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    """Ranked requests: every candidate with its scores (the chosen one is `text`); requests
    with `alternatives`: the answer's candidate first, then the alternatives."""

    @property
    def evaluated_tokens(self) -> int:
        return self.prompt_tokens - self.reused_tokens


class Flag(Protocol):
    """What a token sets when cancelled: a threading.Event, or llama.cpp's AbortFlag."""

    def set(self) -> None: ...


class CancelToken:
    """Set once, from any thread; checked by the engine between tokens and batches.

    A hard cancel also stops the prompt batch llama.cpp is evaluating (through
    the linked abort flag). A soft one (`finish_batch`: superseded by a newer
    keystroke, cancelled by the editor) lets that batch finish: the next prompt
    almost always starts with the same tokens, and while the user types faster
    than one batch takes, aborting every batch would keep the cache from ever
    growing. The engine hardens a soft cancel when the prompt that supersedes
    it does not share the batch in flight."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self._hard = False
        self._watchers: list[tuple[Flag, bool]] = []
        self._lock = threading.Lock()

    def cancel(self, reason: str = "cancelled", *, finish_batch: bool = False) -> None:
        with self._lock:
            if not self._event.is_set():
                self.reason = reason
                self._event.set()
                for watcher, soft in self._watchers:
                    if soft:
                        watcher.set()
            if not finish_batch:
                self._harden()

    def abort_batch(self) -> None:
        """Stop the batch in flight too (a cancel that was soft becomes hard)."""
        with self._lock:
            self._harden()

    def _harden(self) -> None:
        self._hard = True
        for watcher, _ in self._watchers:
            watcher.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def link(self, flag: Flag, *, soft: bool = False) -> None:
        """Also set `flag` on a hard cancel (llama.cpp's abort flag), or on any (`soft`)."""
        with self._lock:
            self._watchers.append((flag, soft))
            if self._hard or (soft and self._event.is_set()):
                flag.set()

    def unlink(self, flag: Flag) -> None:
        with self._lock:
            self._watchers = [(f, soft) for f, soft in self._watchers if f is not flag]


class ModelView(Vocabulary, Tokenizer, Protocol):
    """The loaded model as the pipeline sees it: vocabulary, tokenizer, context size."""

    @property
    def n_ctx(self) -> int: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...


class Generator(Protocol):
    """An engine that completes token prompts: the seam between pipeline and model."""

    @property
    def model(self) -> ModelView:
        """The loaded model; raises ModelNotReadyError before it is."""
        ...

    def uncached(self, prompt: Sequence[int]) -> int:
        """How many of `prompt`'s tokens generating now would evaluate: those its cache does
        not hold (all of them before any prompt was evaluated). The pipeline answers a cold
        prompt from its nearest tokens first (`Settings.cold_start_tokens`)."""
        ...

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> Generation:
        """Complete `request.prompt`; returns (finish_reason "cancelled") once `cancel` is set."""
        ...

    def prefill(self, prompt: Sequence[int], after: CancelToken | None = None) -> Future[int] | None:
        """Evaluate `prompt` into the cache in the background, unless something newer than
        `after` was asked; None when nothing was started."""
        ...
