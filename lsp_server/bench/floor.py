"""The floor: the server's own prompts run straight through llama-cpp-python.

`FloorGenerator` stands in for the server's `Engine` under the very same
`Pipeline`: the context rules, `build_prompt` with the detected template, the
stop rules and the post-processing are the server's code, unchanged; only
the generation goes through llama-cpp-python's high-level `Llama`:
`generate` evaluates the prompt with its own KV prefix reuse, then `eval`
takes one token at a time, chosen from Llama's logits by the server's rule
(greedy; while healed whitespace is not written yet, the most likely token
that agrees with it). Like the server's engine it stops on end-of-generation
or FIM markers, on the stop rule, on max_tokens and on the time budget, so
it generates the same tokens; the report checks that the completions agree.

The floor builds prompts without project context (`Pipeline(engine)`); the
server's prompts are the same because each session runs on a fresh server
with one file open and no workspace root, where that context is empty (see
`replay.run_server`). Should the server ever take context from the open
file itself, the floor must be fed the same.

Pairing: each server request that was computed to the end (answered in time,
empty or not, or answered after the next keystroke) and is not a skip is run
once more here, in session order; so is every request before a pause (what
the user waits for), whatever the server did with it. Before it, the prompt of the nearest
earlier request of the same session that has a prompt (normally the previous
keystroke's) is evaluated untimed, so the floor starts from the KV cache an
ideal server would have: "one keystroke later". The floor's time is prompt
evaluation plus generation, as `Llama` does them. It runs right after each
session's replay, while the server sits idle, so that on a shared, noisy
machine the two are measured minutes apart rather than a whole run apart.

This module imports `llama_cpp` because the floor is, by definition, that
library used directly.
"""

from __future__ import annotations

import bisect
import codecs
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from unittest import mock

import llama_cpp
import numpy as np
from tqdm import tqdm

from lsp_server.bench.replay import RequestRecord
from lsp_server.bench.sessions import PAUSE_MS, Session
from lsp_server.context import Mode
from lsp_server.decoding import forced_tokens, next_token
from lsp_server.engine import EngineConfig
from lsp_server.errors import ModelNotReadyError
from lsp_server.generator import CancelToken, FinishReason, Generation
from lsp_server.generator import GenerationRequest as Request
from lsp_server.llama_model import LlamaModel, model_params
from lsp_server.models import resolve_model
from lsp_server.pipeline import CompletionRequest, Pipeline
from lsp_server.service import uri_to_path
from lsp_server.settings import Settings, effective_threads

PAIRED_OUTCOMES = frozenset({"shown", "empty", "late"})
"""Outcomes of requests the server computed to the end (late_empty may be a superseded one)."""


class FloorGenerator:
    """The pipeline's generation requests, served by `llama_cpp.Llama` (a `Generator`)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        # The server's own tokenizer and vocabulary checks (vocab only: no weights in memory).
        self._vocab: LlamaModel | None = LlamaModel(
            config.model_path,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            n_batch=config.n_batch,
            vocab_only=True,
        )
        self._lora = self._vocab.declared_lora()
        self._llama: llama_cpp.Llama | None = None
        self.priming = False
        """Evaluate the prompt only (untimed set-up of the KV cache)."""
        self.ranked = False
        """The last request asked for candidate lines: the floor answers it greedily
        (`Llama` holds one sequence), so its time is the greedy line's."""

    @property
    def model(self) -> LlamaModel:
        if self._vocab is None:
            raise ModelNotReadyError("the floor is closed")
        return self._vocab

    def generate(self, request: Request, cancel: CancelToken) -> Generation:
        return self._serve(request)

    def uncached(self, prompt: Sequence[int]) -> int:
        """None, as far as the pipeline is concerned: the floor evaluates every prompt whole
        (reusing what `Llama` has cached), never the server's quick answer to a cold prompt.
        Where the server answers from fewer tokens, that gain shows in the ratio."""
        return 0

    def prefill(self, prompt: Sequence[int], after: CancelToken | None = None) -> Future[int] | None:
        """The floor does no background work."""
        return None

    def _load_llama(self) -> llama_cpp.Llama:
        if self._llama is None:
            # `Llama` takes no model parameters of ours: give it the server's (no AMX buffers
            # where they crash) through the one function it builds them with.
            params = model_params()
            with mock.patch.object(llama_cpp.llama_cpp, "llama_model_default_params", lambda: params):
                self._llama = self._new_llama()
        return self._llama

    def _new_llama(self) -> llama_cpp.Llama:
        return llama_cpp.Llama(
            str(self.config.model_path),
            n_ctx=self.config.n_ctx,
            n_threads=self.config.n_threads,
            n_threads_batch=self.config.n_threads,
            n_batch=self.config.n_batch,
            n_ubatch=self.config.n_batch,
            swa_full=True,  # as the server: lets Gemma 3 drop a KV tail instead of restarting
            # The server keeps llama.cpp's default (auto), which picks flash attention on
            # CPU; `Llama` turns it off unless asked. Other kernels, other near-ties.
            flash_attn=True,
            # The LoRA layers the model file names, applied as the server applies them.
            lora_path=str(self._lora) if self._lora else None,
            verbose=False,
        )

    def _serve(self, request: Request) -> Generation:
        self.ranked = request.candidates > 1
        llama = self._load_llama()
        vocab = self.model
        prompt = list(request.prompt)
        cached = llama.input_ids[: llama.n_tokens].tolist()
        # Llama re-evaluates the last prompt token, unless the whole prompt is what it just
        # evaluated (then it samples from the logits it has: e.g. a typed space, healed away).
        reused = len(prompt) if cached == prompt else min(_common_prefix(cached, prompt), len(prompt) - 1)
        started = time.perf_counter()
        evaluation = llama.generate(prompt, temp=0.0, repeat_penalty=1.0)
        next(evaluation)  # evaluates the prompt, reusing the cached prefix (and samples once)
        evaluation.close()
        prompt_done = time.perf_counter()
        if self.priming:
            return Generation("", "cancelled", len(prompt), reused, 0, (prompt_done - started) * 1000, 0.0)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        deadline = prompt_done + request.time_budget_s
        max_tokens = min(self.config.n_ctx - len(prompt), request.max_tokens)
        text, reason = "", "length"
        tokens: list[int] = []
        written = forced_tokens(vocab, request)
        for _ in range(max_tokens):
            # The server's own decoding rule, on Llama's logits.
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(vocab.n_vocab,)
            )
            choice = next_token(vocab, logits, request, text, tokens, written)
            if choice is None:
                reason = "eos"
                break
            token = choice
            if vocab.is_eog(token) or token in request.stop_token_ids or vocab.is_control(token):
                reason = "eos"
                break
            tokens.append(token)
            text += decoder.decode(vocab.piece(token))
            cut = request.stop(text) if request.stop is not None else None
            if cut is not None:
                text, reason = text[:cut], "stop"
                break
            if time.perf_counter() > deadline:
                reason = "budget"
                break
            llama.eval([token])
        finished = time.perf_counter()
        return Generation(
            text=text,
            finish_reason=_reason(reason),
            prompt_tokens=len(prompt),
            reused_tokens=reused,
            generated_tokens=len(tokens),
            prompt_ms=(prompt_done - started) * 1000,
            generate_ms=(finished - prompt_done) * 1000,
            token_ids=tuple(tokens),
        )

    def close(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None
        if self._vocab is not None:
            self._vocab.close()
            self._vocab = None


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _reason(value: str) -> FinishReason:
    for reason in ("stop", "eos", "length", "budget", "cancelled", "context"):
        if value == reason:
            return reason
    raise ValueError(value)


@dataclass
class FloorRecord:
    session: str
    index: int
    prompt_tokens: int
    reused_tokens: int
    generated_tokens: int
    prompt_ms: float
    generate_ms: float
    finish_reason: str
    text: str
    ranked: bool = False
    """The server ranked candidate lines here; the floor wrote the greedy one."""

    @property
    def engine_ms(self) -> float:
        return self.prompt_ms + self.generate_ms


@dataclass
class FloorRun:
    records: list[FloorRecord]
    model_path: str
    template: str
    cpu_s: float
    wall_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @staticmethod
    def merge(parts: Sequence[FloorRun]) -> FloorRun:
        """One run from the per-session runs, in order."""
        if not parts:
            raise ValueError("no floor runs to merge")
        return FloorRun(
            records=[r for part in parts for r in part.records],
            model_path=parts[0].model_path,
            template=parts[0].template,
            cpu_s=sum(p.cpu_s for p in parts),
            wall_s=sum(p.wall_s for p in parts),
            load_before=parts[0].load_before,
            load_after=parts[-1].load_after,
        )


class Workload:
    """The document at every event of the sessions, as the server saw it."""

    def __init__(self, sessions: Sequence[Session]) -> None:
        self._states: dict[str, list[tuple[str, int]]] = {}
        self._sessions = {s.name: s for s in sessions}
        for session in sessions:
            self._states[session.name] = [(text, event.cursor) for event, text in session.states()]

    def request(self, record: RequestRecord) -> CompletionRequest:
        session = self._sessions[record.session]
        text, cursor = self._states[record.session][record.index]
        return CompletionRequest(text, cursor, session.language_id, path=uri_to_path(session.uri))


def floor_generator(settings: Settings) -> FloorGenerator:
    return FloorGenerator(
        EngineConfig(
            model_path=resolve_model(settings.model_path).path,
            n_ctx=settings.context_size,
            n_threads=effective_threads(settings),
            n_batch=settings.batch_size,
        )
    )


def wanted(record: RequestRecord) -> bool:
    """The floor runs requests the server computed to the end, and those before a pause."""
    if record.mode == Mode.SKIP.value:
        return False
    return record.outcome in PAIRED_OUTCOMES or record.planned_gap_ms >= PAUSE_MS


def classify(
    pipeline: Pipeline, workload: Workload, records: Sequence[RequestRecord], settings: Settings
) -> None:
    """Set each record's mode with the server's own context rules."""
    for record in records:
        record.mode = pipeline.context_for(workload.request(record), settings).mode.value


def run_floor(
    engine: FloorGenerator,
    workload: Workload,
    records: Sequence[RequestRecord],
    settings: Settings,
    *,
    quiet: bool = False,
) -> FloorRun:
    """Run every floor request (see `wanted`) through llama-cpp-python, primed one keystroke earlier."""
    pipeline = Pipeline(engine)
    with_prompt: dict[str, list[int]] = {}
    for record in records:
        if record.mode and record.mode != Mode.SKIP.value:
            with_prompt.setdefault(record.session, []).append(record.index)
    by_key = {(r.session, r.index): r for r in records}
    pairs = [r for r in records if wanted(r)]
    load_before = os.getloadavg()
    cpu, wall = time.process_time(), time.perf_counter()
    results: list[FloorRecord] = []
    for record in tqdm(pairs, desc="floor (llama-cpp-python)", unit="req", file=sys.stderr, disable=quiet):
        indices = with_prompt[record.session]
        position = bisect.bisect_left(indices, record.index)
        if position > 0:
            engine.priming = True
            previous = by_key[(record.session, indices[position - 1])]
            pipeline.complete(workload.request(previous), settings)
            engine.priming = False
        completion = pipeline.complete(workload.request(record), settings)
        generation = completion.generation
        if generation is None:
            raise AssertionError(f"no generation for a paired request: {completion.reason}")
        results.append(
            FloorRecord(
                session=record.session,
                index=record.index,
                prompt_tokens=generation.prompt_tokens,
                reused_tokens=generation.reused_tokens,
                generated_tokens=generation.generated_tokens,
                prompt_ms=generation.prompt_ms,
                generate_ms=generation.generate_ms,
                finish_reason=generation.finish_reason,
                text=completion.text,
                ranked=engine.ranked,
            )
        )
    return FloorRun(
        records=results,
        model_path=str(engine.config.model_path),
        template=pipeline.template.family,
        cpu_s=time.process_time() - cpu,
        wall_s=time.perf_counter() - wall,
        load_before=load_before,
        load_after=os.getloadavg(),
    )
