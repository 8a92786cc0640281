"""The model, owned by one thread: loading, KV-cache reuse, generation, cancellation.

Every call into llama.cpp happens on the engine's own thread, so requests
never race on the context. Each request carries a `CancelToken`; the engine
checks it between prompt batches (and llama.cpp's abort callback checks it
inside one), and after every generated token, so a cancelled or superseded
request stops within one token. What is in the KV cache is tracked as a token
list: a new prompt re-evaluates only what differs from the cached one.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from lsp_server.decoding import Branch, forced_tokens, next_token
from lsp_server.errors import ModelError, ModelNotReadyError, RequestCancelledError
from lsp_server.generator import CancelToken, Candidate, Generation, GenerationRequest
from lsp_server.kv_reuse import ReusePlan, plan_reuse, removals, shift_order
from lsp_server.llama_model import LlamaModel
from lsp_server.ranking import branch_alternatives, rank, sure_of_the_start
from lsp_server.settings import MAX_CANDIDATES, MAX_FORKS

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class EngineConfig:
    model_path: Path
    n_ctx: int = 4096
    n_threads: int = 2
    n_batch: int = 128
    n_gpu_layers: int = 0
    """Layers offloaded to a GPU (a llama.cpp built with a GPU backend; else ignored)."""
    reuse_min_run: int = 64
    """Shift cached runs of at least this many tokens into place (0: prefix reuse only)."""
    n_seq_max: int = MAX_CANDIDATES + MAX_FORKS
    """KV sequences: the most candidates a request may have decoded side by side."""


class EngineState(enum.Enum):
    EMPTY = "empty"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass
class EngineStats:
    requests: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    shifted_tokens: int = 0
    prefills: int = 0
    """Background prompt evaluations finished (cold start, after answers from the cache)."""
    prefill_tokens: int = 0
    """Prompt tokens those evaluated (not reused)."""
    prompt_seconds: float = 0.0
    """Time spent bringing the KV cache to the prompt (requests that got that far)."""
    generate_seconds: float = 0.0
    load_seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class Engine:
    """Owns one `LlamaModel` on one thread; a `generator.Generator`."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inkling-engine")
        self._model: LlamaModel | None = None
        self._cached: list[int] = []
        self._prompt_logits: tuple[list[int], npt.NDArray[np.float32]] | None = None
        """The last evaluated prompt and a copy of the logits after its last token."""
        self.state = EngineState.EMPTY
        self.error: str | None = None
        self.stats = EngineStats()
        self._current: CancelToken | None = None
        self._in_flight: tuple[list[int], int] | None = None
        """The prompt being evaluated and the end of the batch llama.cpp is on (engine lock)."""
        self._lock = threading.Lock()
        self.primed = False
        self._prefilling: list[int] | None = None
        """The prompt a background evaluation is filling the cache with, until it ends."""
        """Whether a request's prompt has been evaluated since the model loaded."""

    # -- lifecycle -------------------------------------------------------------

    def load(self, on_progress: Callable[[float], None] | None = None) -> Future[None]:
        """Load the model on the engine thread; the future fails with ModelError."""
        self.state = EngineState.LOADING
        return self._executor.submit(self._load, on_progress)

    def _load(self, on_progress: Callable[[float], None] | None) -> None:
        started = time.perf_counter()
        try:
            self._model = LlamaModel(
                self.config.model_path,
                n_ctx=self.config.n_ctx,
                n_threads=self.config.n_threads,
                n_batch=self.config.n_batch,
                on_progress=on_progress,
                n_seq_max=self.config.n_seq_max,
                n_gpu_layers=self.config.n_gpu_layers,
            )
            self._warm_up()
        except ModelError as exc:
            self.state = EngineState.FAILED
            self.error = str(exc)
            raise
        except Exception as exc:  # anything else llama.cpp throws is still a model problem
            self.state = EngineState.FAILED
            self.error = f"could not load {self.config.model_path}: {exc}"
            raise ModelError(self.error) from exc
        self.stats.load_seconds = time.perf_counter() - started
        self.state = EngineState.READY
        log.info(
            "model ready in %.2fs: %s (%s)%s",
            self.stats.load_seconds,
            self.config.model_path,
            self._model.description(),
            f", LoRA {self._model.lora} applied" if self._model.lora else "",
        )

    def _warm_up(self) -> None:
        """Run one tiny decode so that the first real request pays no start-up cost."""
        assert self._model is not None
        tokens = self._model.tokenize("def main():\n", add_bos=self._model.add_bos)
        self._model.decode(tokens[: self._model.n_batch], 0)
        self._cached = list(tokens[: self._model.n_batch])

    def close(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current.cancel("shutdown")
        self.state = EngineState.CLOSED
        self._executor.submit(self._close_model)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _close_model(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None

    @property
    def ready(self) -> bool:
        return self.state is EngineState.READY

    @property
    def model(self) -> LlamaModel:
        """The loaded model, for read-only vocabulary questions from any thread."""
        if self._model is None or self.state is not EngineState.READY:
            raise ModelNotReadyError(self.error or f"the model is {self.state.value}")
        return self._model

    # -- requests ----------------------------------------------------------------

    def submit(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Future[Generation]:
        """Queue a generation. The latest request wins: the running one is superseded."""
        if not self.ready:
            raise ModelNotReadyError(self.error or f"the model is {self.state.value}")
        token = cancel or CancelToken()
        with self._lock:
            self._supersede(request.prompt)
            self._current = token
        return self._executor.submit(self._run, request, token)

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> Generation:
        """`submit` and wait, but give up waiting as soon as `cancel` is set: after a soft
        cancel the engine finishes its batch alone, and the caller is free to build the
        next request's prompt, whose arrival decides whether that batch is worth finishing."""
        future = self.submit(request, cancel)
        wake = threading.Event()
        future.add_done_callback(lambda _: wake.set())
        cancel.link(wake, soft=True)
        try:
            wake.wait()
        finally:
            cancel.unlink(wake)
        if future.done():
            return future.result()
        return Generation("", "cancelled", len(request.prompt), 0, 0, 0.0, 0.0)

    def _supersede(self, prompt: Sequence[int]) -> None:
        """Cancel the running request; its batch in flight finishes only if `prompt`
        starts with the same tokens up to that batch's end (engine lock held)."""
        if self._current is None:
            return
        self._current.cancel("superseded", finish_batch=True)
        if self._in_flight is not None:
            evaluating, end = self._in_flight
            if len(prompt) <= end or list(prompt[:end]) != evaluating[:end]:
                self._current.abort_batch()

    def prefill(self, prompt: Sequence[int], after: CancelToken | None = None) -> Future[int] | None:
        """Evaluate `prompt` into the KV cache, unless something newer than the request
        `after` (if given) was asked; superseded and cancelled like any request (the batches
        done are kept). For a cold start: the whole prompt, after a quick answer from part
        of it; after an answer from the completion cache: the prompt of that document.
        The future gives the tokens reused (-1: cancelled); None: not started."""
        token = CancelToken()
        with self._lock:
            if (after is not None and self._current is not after) or not self.ready:
                return None
            self._supersede(prompt)
            self._current = token
            self._prefilling = list(prompt)
        return self._executor.submit(self._prefill, self._prefilling, token)

    def _prefill(self, prompt: list[int], cancel: CancelToken) -> int:
        try:
            return self._evaluate_in_background(prompt, cancel)
        finally:
            with self._lock:
                if self._prefilling is prompt:
                    self._prefilling = None

    def _evaluate_in_background(self, prompt: list[int], cancel: CancelToken) -> int:
        if cancel.cancelled or self._model is None:
            return -1
        started = time.perf_counter()
        try:
            reused = self._evaluate_prompt(self._model, prompt, cancel)
        except Exception:  # the next request meets the problem and reports it
            log.exception("background prompt evaluation failed")
            return -1
        if reused >= 0:
            self.stats.prefills += 1
            self.stats.prefill_tokens += len(prompt) - reused
            log.debug(
                "background prompt evaluation: %d tokens (%d reused) in %.0f ms",
                len(prompt),
                reused,
                (time.perf_counter() - started) * 1000,
            )
        return reused

    def run_on_engine_thread(self, job: Callable[[LlamaModel], T]) -> Future[T]:
        """Run `job(model)` on the engine thread (benchmarks, diagnostics).

        The job gets an empty KV cache and may use it freely: it is cleared again afterwards."""

        def wrapped() -> T:
            model = self.model
            model.kv_clear()
            self._cached = []
            self._prompt_logits = None
            try:
                return job(model)
            finally:
                model.kv_clear()
                self._cached = []

        return self._executor.submit(wrapped)

    def _run(self, request: GenerationRequest, cancel: CancelToken) -> Generation:
        model = self.model
        self.stats.requests += 1
        prompt = list(request.prompt)
        started = time.perf_counter()
        if cancel.cancelled:
            self.stats.cancelled += 1
            return Generation("", "cancelled", len(prompt), 0, 0, 0.0, 0.0)
        room = model.n_ctx - len(prompt)
        if room <= 0:
            raise ModelError(f"the prompt has {len(prompt)} tokens but the context holds {model.n_ctx}")
        reused = self._evaluate_prompt(model, prompt, cancel)
        prompt_done = time.perf_counter()
        if reused < 0:
            self.stats.cancelled += 1
            return Generation("", "cancelled", len(prompt), 0, 0, (prompt_done - started) * 1000, 0.0)
        assert self._prompt_logits is not None  # set by every completed prompt evaluation
        max_tokens = min(room, request.max_tokens)
        candidates: tuple[Candidate, ...] = ()
        ranked = request.candidates > 1 and request.candidates + request.forks <= model.n_seq_max
        if ranked or request.alternatives > 0:
            branch, candidates = self._generate_branched(
                model, request, cancel, max_tokens, self._prompt_logits[1], ranked=ranked
            )
        else:
            branch = self._generate(model, request, cancel, max_tokens, self._prompt_logits[1])
        text, tokens, reason = branch.text, branch.tokens, branch.reason or "length"
        finished = time.perf_counter()
        if reason == "cancelled":
            self.stats.cancelled += 1
        self.stats.prompt_tokens += len(prompt)
        self.stats.reused_tokens += reused
        self.stats.generated_tokens += len(tokens)
        self.stats.prompt_seconds += prompt_done - started
        self.stats.generate_seconds += finished - prompt_done
        return Generation(
            text=text,
            finish_reason=reason,
            prompt_tokens=len(prompt),
            reused_tokens=reused,
            generated_tokens=len(tokens),
            prompt_ms=(prompt_done - started) * 1000,
            generate_ms=(finished - prompt_done) * 1000,
            token_ids=tuple(tokens),
            candidates=candidates,
        )

    def _evaluate_prompt(self, model: LlamaModel, prompt: list[int], cancel: CancelToken) -> int:
        """Bring the KV cache to `prompt` and keep the logits after it (`_prompt_logits`);
        returns tokens reused, or -1 if cancelled."""
        if self._repeats_last_prompt(model, prompt):
            return len(prompt)
        self._prompt_logits = None
        min_run = self.config.reuse_min_run if model.can_shift else 0
        plan = plan_reuse(self._cached, prompt, min_run)
        if not self._rearrange(model, plan):
            model.kv_clear()
            plan = plan_reuse([], prompt, 0)
        self._cached = prompt[: plan.keep]
        flag = model.abort_flag
        flag.clear()
        cancel.link(flag)
        try:
            for start, end in plan.evaluate:
                position = start
                while position < end:
                    chunk = prompt[position : min(end, position + model.n_batch)]
                    try:
                        with self._lock:  # a request superseding this one sees the batch it may keep
                            if cancel.cancelled:
                                raise RequestCancelledError(cancel.reason)
                            self._in_flight = (prompt, position + len(chunk))
                        model.decode(chunk, position)
                    except RequestCancelledError:
                        # Keep only what is valid in order: later shifted runs go too.
                        model.kv_truncate(position)
                        self._cached = prompt[:position]
                        return -1
                    position += len(chunk)
        finally:
            with self._lock:
                self._in_flight = None
            cancel.unlink(flag)
            flag.clear()
        self._cached = list(prompt)
        self._prompt_logits = (list(prompt), model.last_logits().copy())
        self.primed = True
        self.stats.shifted_tokens += sum(move.length for move in plan.moves)
        return plan.reused

    def uncached(self, prompt: Sequence[int]) -> int:
        """Tokens of `prompt` not in the cache, counting those a background evaluation
        started (`prefill`) is putting there: a request right after a quick answer then
        takes the whole prompt and continues that evaluation (superseding it keeps its
        batches), where another quick prompt would evict it and start it over."""
        model = self._model
        with self._lock:
            pending = self._prefilling
        if model is None or (not self.primed and pending is None):
            return len(prompt)
        min_run = self.config.reuse_min_run if model.can_shift else 0
        missing = len(prompt) - plan_reuse(list(self._cached), prompt, min_run).reused
        if pending is not None:
            missing = min(missing, len(prompt) - plan_reuse(pending, prompt, min_run).reused)
        return missing

    def _repeats_last_prompt(self, model: LlamaModel, prompt: list[int]) -> bool:
        """Whether `prompt` is the last evaluated one, still in the cache (maybe followed by
        the tokens generated after it): then only those tokens are dropped, and the kept
        logits stand in for evaluating its last token again. While the user types a word,
        token healing takes the word off the prompt, so the prompt does not change."""
        kept = self._prompt_logits
        if kept is None or kept[0] != prompt or self._cached[: len(prompt)] != prompt:
            return False
        if len(self._cached) > len(prompt) and not model.kv_truncate(len(prompt)):
            return False
        self._cached = list(prompt)
        return True

    @staticmethod
    def _rearrange(model: LlamaModel, plan: ReusePlan) -> bool:
        """Drop what the plan does not keep and move its runs into place."""
        for start, end in removals(plan):
            if not model.kv_remove(start, end):
                return False
        for move in shift_order(plan):
            model.kv_shift(move.src, move.src + move.length, move.dst - move.src)
        return True

    def _generate(
        self,
        model: LlamaModel,
        request: GenerationRequest,
        cancel: CancelToken,
        max_tokens: int,
        prompt_logits: npt.NDArray[np.float32],
    ) -> Branch:
        """Greedy decoding (the decoding rule's choice at every step) in sequence 0."""
        branch = self._branch(request, max_tokens)
        if max_tokens > 0:
            self._decode_greedy(model, request, cancel, branch, prompt_logits, forced_tokens(model, request))
        return branch

    def _generate_branched(
        self,
        model: LlamaModel,
        request: GenerationRequest,
        cancel: CancelToken,
        max_tokens: int,
        prompt_logits: npt.NDArray[np.float32],
        *,
        ranked: bool,
    ) -> tuple[Branch, tuple[Candidate, ...]]:
        """The forced text greedily, then (`ranked`) `request.candidates` branches judged by
        `ranking` where the line's start is unsure, else the greedy completion, with
        `request.alternatives` beside it when asked for. The cache is left holding the
        prompt alone (its logits are kept)."""
        prompt_length = len(self._cached)
        trunk = self._branch(request, max_tokens, score_tokens=ranked)
        written = forced_tokens(model, request)
        try:
            logits = self._decode_greedy(
                model,
                request,
                cancel,
                trunk,
                prompt_logits,
                written,
                until_free=ranked,
                until_choice=not ranked,
            )
            if logits is None or max_tokens <= 0:
                return trunk, ()
            if ranked and not sure_of_the_start(model, request, logits):
                return rank(model, request, cancel, trunk, logits, written, prompt_length)
            if request.alternatives > 0:
                return branch_alternatives(model, request, cancel, trunk, logits, written, model.n_seq_max)
            self._decode_greedy(model, request, cancel, trunk, logits, written)
            return trunk, ()
        finally:
            used = max(request.candidates + request.forks, 1 + request.alternatives)
            for seq in range(1, min(used, model.n_seq_max)):
                model.kv_remove(0, -1, seq)
            model.kv_truncate(prompt_length)
            self._cached = self._cached[:prompt_length]

    @staticmethod
    def _branch(request: GenerationRequest, max_tokens: int, *, score_tokens: bool = False) -> Branch:
        deadline = time.perf_counter() + request.time_budget_s
        return Branch(seq=0, position=0, max_tokens=max_tokens, deadline=deadline, score_tokens=score_tokens)

    def _decode_greedy(
        self,
        model: LlamaModel,
        request: GenerationRequest,
        cancel: CancelToken,
        branch: Branch,
        logits: npt.NDArray[np.float32],
        written: list[int],
        *,
        until_free: bool = False,
        until_choice: bool = False,
    ) -> npt.NDArray[np.float32] | None:
        """Decode `branch` in sequence 0 until it ends (None); with `until_free`, stop once
        the forced and healed text is written, with `until_choice` once the forced tokens
        are (the rule chooses the next one), and return the logits there."""
        branch.position = len(self._cached)
        while True:
            if until_free and not branch.forcing(request, written):
                return logits
            if until_choice and branch.choosing(written):
                return logits
            if cancel.cancelled:
                branch.reason = "cancelled"
                return None
            token = next_token(model, logits, request, branch.text, branch.tokens, written)
            if not branch.take(model, request, token, logits):
                return None
            assert token is not None  # a branch that goes on took a token
            model.decode([token], branch.position)
            self._cached.append(token)
            branch.position += 1
            logits = model.last_logits()
