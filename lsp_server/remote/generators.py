"""Generators that send the pipeline's prompts to an inference server (`engineUrl`).

The language server keeps what is local and cheap: buffers, tree-sitter, project
context, the prompt (Inkling's own FIM format, token budgets, healing), stop rules
and post-processing. Only generation happens on the server.

* **llama.cpp's `llama-server`** (`LlamaServerGenerator`): `POST /completion` with the
  prompt as token ids, `cache_prompt` and `id_slot` (the slot the server chose for this
  editor's first request, kept from then on, so the slot's KV cache follows this
  editor's typing), streamed. The decoding rule is the in-process one: forced tokens
  (healed indentation) are appended to the prompt; where the rule chooses among tokens
  (a half-typed word healed, the first token of a line) the first tokens come with the
  server's top `n_probs` log-probabilities and the rule picks there; when its pick
  differs from the server's greedy token, the stream is closed and restarted with the
  pick appended. The stop rule runs here on every streamed token; stopping or
  cancelling closes the connection, which stops the server's task.
* **OpenAI-compatible servers** (`OpenAIGenerator`; vLLM, llama-server's `/v1`, ...):
  `POST /v1/completions` with the prompt as text (special tokens written out), streamed.
  A text prompt cannot force a first token, so healing is by agreement: the prompt goes
  without the healed tail and an answer is kept if it starts with it, else asked again
  with the tail as typed. The first-token rule of a line is not applied.

Neither ranks a blank line's candidates (`lineCandidates`): ranking judges each
candidate by the log-probability of the code below it, which neither API returns for
prompt text. Those requests are decoded greedily, and the log says so once. Neither
branches an explicit request into alternatives (`inlineSuggestions`): each would be
another request holding another slot, with the rule's first-token choice made here;
such a request gets its first suggestion only (the log says so once).
Failures (refused connection, timeout, HTTP 5xx, a connection closed mid-answer)
raise `EngineError`: the front end answers empty and shows the message once.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lsp_server.decoding import agrees_with, on_this_line
from lsp_server.engine import EngineStats
from lsp_server.errors import ModelError
from lsp_server.generator import CancelToken, FinishReason, Generation, GenerationRequest
from lsp_server.remote.client import (
    Closer,
    EngineCancelledError,
    EngineClient,
    EngineError,
    EngineRejectedError,
)

log = logging.getLogger(__name__)

LLAMA_CPP = "llama.cpp"
OPENAI = "openai"
DECISION_PROBS = 64
"""Top tokens asked for where the decoding rule chooses (the engine looks at up to 512;
the rule's pick is nearly always among the first few)."""
DECISION_TOKENS = 1
"""Tokens a request with `n_probs` generates before the next request goes on without them:
llama-server sorts the whole vocabulary for each token it gives probabilities for (262,144
entries for Gemma 3), so only the tokens the rule decides on carry them."""


@dataclass(frozen=True)
class EngineInfo:
    """What the server says about itself."""

    kind: str
    """LLAMA_CPP or OPENAI."""
    url: str
    model: str
    """The model's name (an OpenAI model id; llama-server's alias or file name)."""
    n_ctx: int
    """Context per request (llama-server: per slot); 0 when the server does not say."""
    slots: int = 0
    model_path: str = ""
    n_vocab: int = 0
    build: str = ""


class RemoteGenerator:
    """The parts both remote generators share: model view, counters, one-time notes."""

    def __init__(self, client: EngineClient, vocab: Any, info: EngineInfo, vocab_source: str) -> None:
        self.client = client
        self._vocab = vocab
        self.info = info
        self.vocab_source = vocab_source
        """'local GGUF PATH' or 'the server's /tokenize'."""
        self.stats = EngineStats()
        self.primed = False
        self.ready = True
        self._noted: set[str] = set()
        self._closed = False
        self.connected = True
        """False when the engine did not answer at start (a local tokenizer let Inkling start):
        the first request asks again what it is."""

    def _connect(self) -> None:
        if self.connected:
            return
        from lsp_server.remote import detect

        client, info = detect(self.info.url)
        if info.kind != self.info.kind:
            raise EngineError(
                f"{self.info.url} turned out to be a {info.kind} server: set engineUrl to {info.url}"
            )
        n_vocab = getattr(self.model, "n_vocab", 0)
        if info.n_vocab and n_vocab and info.n_vocab != n_vocab:
            raise EngineError(
                f"the engine at {info.url} has a vocabulary of {info.n_vocab} tokens and modelPath "
                f"one of {n_vocab}: set modelPath to the file the engine serves"
            )
        client.read_timeout_s = self.client.read_timeout_s
        self.client, self.info = client, info
        if info.n_ctx:
            self.model.n_ctx = info.n_ctx
        self.connected = True
        log.info("connected: generation on the %s", self.describe())

    @property
    def model(self) -> Any:
        return self._vocab

    def describe(self) -> str:
        return (
            f"{self.info.kind} engine at {self.info.url} ({self.info.model}; tokenizer: {self.vocab_source})"
        )

    def note_once(self, key: str, message: str) -> None:
        if key not in self._noted:
            self._noted.add(key)
            log.warning("%s", message)

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> Generation:
        raise NotImplementedError

    def _room(self, request: GenerationRequest) -> int:
        n_ctx = int(self.model.n_ctx)
        room = n_ctx - len(request.prompt)
        if room <= 0:
            raise ModelError(
                f"the prompt has {len(request.prompt)} tokens but the engine's context holds {n_ctx}"
            )
        return min(room, request.max_tokens)

    def _degrade_ranking(self, request: GenerationRequest) -> None:
        if request.candidates > 1:
            self.note_once(
                "ranking",
                f"the {self.info.kind} engine at {self.info.url} does not give the log-probability "
                "of the code below a candidate line: blank lines are decoded greedily "
                "(lineCandidates has no effect)",
            )
        if request.alternatives > 0:
            self.note_once(
                "alternatives",
                f"the {self.info.kind} engine at {self.info.url} is not asked for alternatives: an "
                "explicit request gets the first suggestion only (inlineSuggestions has no effect)",
            )

    def uncached(self, prompt: Sequence[int]) -> int:
        """A server's cache is not visible from here (vLLM caches prefixes by itself): cold
        until the first generation, then taken as warm."""
        return 0 if self.primed else len(prompt)

    def prefill(self, prompt: Sequence[int], after: CancelToken | None = None) -> Future[int] | None:
        return None

    def clear_cache(self) -> None:
        """Start the next request from an empty cache (`inkling eval`: every task cold)."""

    def close(self) -> None:
        self._closed = True
        self.ready = False
        close = getattr(self._vocab, "close", None)
        if close is not None:
            close()


class _Decoded:
    """A completion being received: its tokens and text, and why it ended."""

    def __init__(self, vocab: Any, request: GenerationRequest, max_tokens: int) -> None:
        self.vocab = vocab
        self.request = request
        self.max_tokens = max_tokens
        self.tokens: list[int] = []
        self.text = ""
        self.reason: FinishReason | None = None
        self.deadline = float("inf")
        """Set when the server's first token arrives: the budget is generation's, as in-process
        (where it starts once the prompt is evaluated)."""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def take(self, token: int) -> bool:
        """As the engine's `Branch.take`: False once the completion has ended."""
        vocab, request = self.vocab, self.request
        if vocab.is_eog(token) or token in request.stop_token_ids or vocab.is_control(token):
            self.reason = "eos"
            return False
        self.tokens.append(token)
        self.text += self._decoder.decode(vocab.piece(token))
        cut = request.stop(self.text) if request.stop is not None else None
        if cut is not None:
            self.text = self.text[:cut]
            self.reason = "stop"
        elif time.perf_counter() > self.deadline:
            self.reason = "budget"
        elif len(self.tokens) >= self.max_tokens:
            self.reason = "length"
        return self.reason is None

    def start_clock(self) -> None:
        if self.deadline == float("inf"):
            self.deadline = time.perf_counter() + self.request.time_budget_s

    def healing(self) -> bool:
        return len(self.text) < len(self.request.forced_prefix)

    def deciding(self) -> bool:
        """Whether the decoding rule, not the server's greedy choice, picks the next token."""
        return self.healing() or (self.request.start_on_line and not self.tokens)

    def choose(self, top: list[tuple[int, float]]) -> int | None:
        """The rule's pick among the server's top tokens (most likely first); None: none fits
        (healing: the caller writes the rest as the tokenizer does)."""
        vocab, request = self.vocab, self.request
        if self.healing():
            remaining = request.forced_prefix[len(self.text) :]
            for token, _ in top:
                if agrees_with(vocab.token_piece(token), remaining) and not vocab.is_control(token):
                    return token
            return None
        for token, _ in top:
            if vocab.is_eog(token) or vocab.is_control(token) or token in request.stop_token_ids:
                continue
            if on_this_line(vocab.token_piece(token)):
                return token
        return None


class LlamaServerGenerator(RemoteGenerator):
    """llama.cpp's server, through `/completion` with token prompts (a `Generator`)."""

    def __init__(self, client: EngineClient, vocab: Any, info: EngineInfo, vocab_source: str) -> None:
        super().__init__(client, vocab, info, vocab_source)
        self.slot = -1
        """The server's slot for this editor: chosen by the server on the first request."""
        self._lock = threading.Lock()
        self._current: CancelToken | None = None
        self._prefilling: CancelToken | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inkling-remote-prefill")
        self._cached: list[int] = []
        """What this side last put into the slot: an estimate of its KV cache (another editor
        sharing the slot, or a restarted server, replaces it unseen)."""

    def uncached(self, prompt: Sequence[int]) -> int:
        """Tokens of `prompt` the slot would evaluate, as far as this side knows."""
        cached = self._cached
        common = 0
        for a, b in zip(cached, prompt, strict=False):
            if a != b:
                break
            common += 1
        return len(prompt) - common

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> Generation:
        with self._lock:
            self._current = cancel
            if self._prefilling is not None:
                self._prefilling.cancel("superseded")
        self._connect()
        self._degrade_ranking(request)
        started = time.perf_counter()
        prompt = list(request.prompt)
        max_tokens = self._room(request)
        decoded = _Decoded(self.model, request, max_tokens)
        if request.forced_as_written and request.forced_prefix:
            for token in self.model.tokenize(request.forced_prefix):
                if not decoded.take(token):
                    break
        first_token_at: float | None = None
        reused = 0
        while decoded.reason is None and not cancel.cancelled:
            deciding = decoded.deciding()
            body = self._body(prompt + decoded.tokens, max_tokens - len(decoded.tokens), deciding)
            outcome = self._stream(body, decoded, cancel)
            if first_token_at is None and outcome.first_token_at is not None:
                first_token_at = outcome.first_token_at
            reused = max(reused, outcome.reused)
            if outcome.first_token_at is not None:  # the server has the prompt in the slot
                self._cached = prompt + decoded.tokens
            if outcome.restart is None:
                if outcome.more:
                    continue
                break
            if outcome.restart < 0:  # healing found no agreeing token among the top ones
                remaining = request.forced_prefix[len(decoded.text) :]
                for token in self.model.tokenize(remaining):
                    if not decoded.take(token):
                        break
            else:
                decoded.take(outcome.restart)
        finished = time.perf_counter()
        first = first_token_at or finished
        self.stats.requests += 1
        if cancel.cancelled:
            self.stats.cancelled += 1
            return Generation("", "cancelled", len(prompt), 0, 0, (first - started) * 1000, 0.0)
        self.primed = True
        self.stats.prompt_tokens += len(prompt)
        self.stats.reused_tokens += reused
        self.stats.generated_tokens += len(decoded.tokens)
        self.stats.prompt_seconds += first - started
        self.stats.generate_seconds += finished - first
        return Generation(
            text=decoded.text,
            finish_reason=decoded.reason or "length",
            prompt_tokens=len(prompt),
            reused_tokens=reused,
            generated_tokens=len(decoded.tokens),
            prompt_ms=(first - started) * 1000,
            generate_ms=(finished - first) * 1000,
            token_ids=tuple(decoded.tokens),
        )

    def _body(self, prompt: list[int], n_predict: int, deciding: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": prompt,
            "n_predict": n_predict,
            "cache_prompt": True,
            "id_slot": self.slot,
            "stream": True,
            "return_tokens": True,
            # Greedy, as the in-process engine: nothing else in the sampler chain.
            "temperature": 0.0,
            "samplers": ["top_k"],
            "top_k": 1,
            "repeat_penalty": 1.0,
        }
        if deciding:
            body["n_probs"] = DECISION_PROBS
            body["n_predict"] = min(n_predict, DECISION_TOKENS)
        return body

    def _stream(self, body: dict[str, Any], decoded: _Decoded, cancel: CancelToken) -> _Outcome:
        closer = Closer()
        cancel.link(closer, soft=True)
        outcome = _Outcome()
        try:
            for event in self._events(body, closer):
                if outcome.first_token_at is None:
                    outcome.first_token_at = time.perf_counter()
                    decoded.start_clock()
                self._note_slot(event)
                probs = event.get("completion_probabilities") or []
                tokens = [int(t) for t in event.get("tokens") or []]
                for index, token in enumerate(tokens):
                    if decoded.deciding():
                        entry = probs[index] if index < len(probs) else None
                        top = _top_tokens(entry)
                        learn = getattr(self.model, "learn_pieces", None)
                        if learn is not None:  # the server's tokenizer: the pieces come with them
                            learn(_top_pieces(entry))
                        choice = decoded.choose(top) if top else token
                        if choice is None and decoded.healing():
                            outcome.restart = -1
                            closer.set()
                            return outcome
                        if choice is None:  # nothing may start this line: an empty completion
                            decoded.reason = "eos"
                            closer.set()
                            return outcome
                        if choice != token:
                            outcome.restart = choice
                            closer.set()
                            return outcome
                    if not decoded.take(token):
                        closer.set()
                        return outcome
                if event.get("stop"):
                    timings = event.get("timings") or {}
                    outcome.reused = int(timings.get("cache_n") or event.get("tokens_cached") or 0)
                    outcome.reused = min(outcome.reused, len(body["prompt"]))
                    if decoded.reason is None:
                        if event.get("stop_type") == "eos":
                            decoded.reason = "eos"
                        elif "n_probs" in body and len(decoded.tokens) < decoded.max_tokens:
                            outcome.more = True  # decided: go on without probabilities
                        else:
                            decoded.reason = "length"
                    return outcome
            if decoded.reason is None and not cancel.cancelled:
                raise EngineError(
                    f"the engine at {self.info.url} ended its answer without saying why (did it stop?)"
                )
            return outcome
        except EngineCancelledError:
            return outcome
        finally:
            cancel.unlink(closer)
            closer.set()

    def _events(self, body: dict[str, Any], closer: Closer) -> Any:
        try:
            yield from self.client.stream("/completion", body, closer)
        except EngineRejectedError as exc:
            if self.slot >= 0 and "slot" in exc.body.lower():
                log.info("the engine refused slot %d (%s); letting it choose again", self.slot, exc)
                self.slot = -1
                body["id_slot"] = -1
                yield from self.client.stream("/completion", body, closer)
            else:
                raise

    def _note_slot(self, event: dict[str, Any]) -> None:
        slot = event.get("id_slot")
        if self.slot < 0 and isinstance(slot, int) and slot >= 0:
            self.slot = slot
            log.info("the engine at %s gave this editor slot %d", self.info.url, slot)

    def prefill(self, prompt: Sequence[int], after: CancelToken | None = None) -> Future[int] | None:
        """Evaluate `prompt` into this editor's slot (`n_predict` 0), unless a newer request
        than `after` came; a request that comes meanwhile closes it."""
        token = CancelToken()
        with self._lock:
            if self._closed or (after is not None and self._current is not after):
                return None
            if self._prefilling is not None:
                self._prefilling.cancel("superseded")
            self._prefilling = token
        return self._executor.submit(self._prefill, list(prompt), token)

    def _prefill(self, prompt: list[int], cancel: CancelToken) -> int:
        if cancel.cancelled or self.slot < 0:
            return -1
        body = {"prompt": prompt, "n_predict": 0, "cache_prompt": True, "id_slot": self.slot, "stream": True}
        closer = Closer()
        cancel.link(closer)
        try:
            for event in self.client.stream("/completion", body, closer):
                if event.get("stop"):
                    self._cached = list(prompt)
                    self.stats.prefills += 1
                    cached = int((event.get("timings") or {}).get("cache_n") or 0)
                    self.stats.prefill_tokens += max(0, len(prompt) - cached)
                    return cached
            return -1
        except (EngineCancelledError, EngineError) as exc:  # the next request meets the problem
            if not cancel.cancelled:
                log.debug("background prompt evaluation failed: %s", exc)
            return -1
        finally:
            cancel.unlink(closer)
            with self._lock:
                if self._prefilling is cancel:
                    self._prefilling = None

    def clear_cache(self) -> None:
        """Replace what this editor's slot holds by the BOS token alone: the next prompt then
        shares nothing with the last one (llama-server erases slots only when started with
        --slot-save-path)."""
        if self.slot < 0:
            return
        body = {"prompt": [self.model.bos_id], "n_predict": 0, "cache_prompt": True, "id_slot": self.slot}
        self.client.post_json("/completion", body)
        self._cached = [self.model.bos_id]

    def close(self) -> None:
        with self._lock:
            if self._prefilling is not None:
                self._prefilling.cancel("shutdown")
            if self._current is not None:
                self._current.cancel("shutdown")
        self._executor.shutdown(wait=True, cancel_futures=True)
        super().close()


@dataclass
class _Outcome:
    restart: int | None = None
    """A token to append before streaming again (-1: write the healed text as is)."""
    more: bool = False
    """A deciding request ended at its token limit: stream again from where it stopped."""
    first_token_at: float | None = None
    reused: int = 0


def _top_tokens(entry: Any) -> list[tuple[int, float]]:
    """(token id, log-probability) of an `n_probs` entry, most likely first."""
    if not isinstance(entry, dict):
        return []
    top = entry.get("top_logprobs") or entry.get("top_probs") or []
    found = []
    for item in top:
        if isinstance(item, dict) and isinstance(item.get("id"), int):
            found.append((int(item["id"]), float(item.get("logprob", item.get("prob")) or 0.0)))
    found.sort(key=lambda pair: -pair[1])
    return found


def _top_pieces(entry: Any) -> dict[int, str]:
    """Token id -> text of an `n_probs` entry's top tokens."""
    if not isinstance(entry, dict):
        return {}
    top = entry.get("top_logprobs") or entry.get("top_probs") or []
    return {
        int(item["id"]): item["token"]
        for item in top
        if isinstance(item, dict) and isinstance(item.get("id"), int) and isinstance(item.get("token"), str)
    }


class OpenAIGenerator(RemoteGenerator):
    """An OpenAI-compatible `/v1/completions` server, prompts as text (a `Generator`).

    Healing by agreement: a text prompt cannot force the first token's text, so the prompt
    goes without the healed tail (a half-typed word, a space typed after a keyword), and
    the answer is kept if it starts with that tail, as the model mostly writes it (" os"
    after "import"). An answer that goes elsewhere is dropped as soon as it does, and the
    prompt is sent again with the tail as typed. A prompt ending in a lone space is a text
    the model never saw in training: sent as typed, the model mostly ends there."""

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> Generation:
        self._connect()
        self._degrade_ranking(request)
        started = time.perf_counter()
        max_tokens = self._room(request)
        vocab = self.model
        tokens = list(request.prompt)
        if tokens and vocab.add_bos and tokens[0] == vocab.bos_id:
            tokens = tokens[1:]  # the server adds its own
        prompt_text = prompt_as_text(vocab, tokens)
        tail = request.forced_prefix
        streamed: _Streamed | None = None
        pieces = 0
        if tail and not request.forced_as_written:
            streamed = self._stream(request, prompt_text, "", tail, max_tokens + 1, cancel)
            pieces = streamed.pieces
            if streamed.disagreed and not cancel.cancelled:
                self.stats.requests += 1
                self.note_once(
                    "healing",
                    f"the OpenAI-compatible engine at {self.info.url} takes text prompts: where its "
                    "answer does not start with the half-typed text, it is asked again with that text "
                    "as typed",
                )
                streamed = None
        if streamed is None:
            streamed = self._stream(request, prompt_text + tail, tail, "", max_tokens, cancel)
            pieces += streamed.pieces
        finished = time.perf_counter()
        first = streamed.first_token_at or finished
        self.stats.requests += 1
        if cancel.cancelled:
            self.stats.cancelled += 1
            return Generation("", "cancelled", len(request.prompt), 0, 0, (first - started) * 1000, 0.0)
        self.primed = True
        self.stats.prompt_tokens += len(request.prompt)
        self.stats.generated_tokens += pieces
        self.stats.prompt_seconds += first - started
        self.stats.generate_seconds += finished - first
        return Generation(
            text=streamed.text,
            finish_reason=streamed.reason or "length",
            prompt_tokens=len(request.prompt),
            reused_tokens=0,
            generated_tokens=pieces,
            prompt_ms=(first - started) * 1000,
            generate_ms=(finished - first) * 1000,
        )

    def _stream(
        self,
        request: GenerationRequest,
        prompt: str,
        text: str,
        heal: str,
        max_tokens: int,
        cancel: CancelToken,
    ) -> _Streamed:
        """Stream one answer onto `text`; with `heal`, the answer must start with it (the
        stream is closed as soon as it does not; the stop rule waits until it has)."""
        vocab = self.model
        stops = [vocab.token_text(t) for t in sorted(request.stop_token_ids)]
        body: dict[str, Any] = {
            "model": self.info.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
        }
        if stops:
            body["stop"] = [s for s in stops if s][:4]
        out = _Streamed(text)
        deadline = time.perf_counter() + request.time_budget_s
        closer = Closer()
        cancel.link(closer, soft=True)
        try:
            for event in self.client.stream("/completions", body, closer):
                choices = event.get("choices") or []
                if not choices:
                    continue
                choice = choices[0]
                piece = str(choice.get("text") or "")
                if piece:
                    if out.first_token_at is None:
                        out.first_token_at = time.perf_counter()
                        deadline = out.first_token_at + request.time_budget_s
                    out.pieces += 1
                    out.text += piece
                    if heal:
                        if not (heal.startswith(out.text) or out.text.startswith(heal)):
                            out.disagreed = True
                            break
                        if len(out.text) < len(heal):
                            continue
                        heal = ""
                    cut = request.stop(out.text) if request.stop is not None else None
                    if cut is not None:
                        out.text, out.reason = out.text[:cut], "stop"
                        break
                    if out.pieces >= max_tokens:
                        out.reason = "length"
                        break
                    if time.perf_counter() > deadline:
                        out.reason = "budget"
                        break
                finish = choice.get("finish_reason")
                if finish:
                    out.disagreed = bool(heal)  # it ended before writing what was typed
                    out.reason = "length" if finish == "length" else "eos"
                    break
            else:
                if out.reason is None and not cancel.cancelled:
                    raise EngineError(f"the engine at {self.info.url} ended its answer without saying why")
        except EngineCancelledError:
            pass
        finally:
            cancel.unlink(closer)
            closer.set()
        return out


@dataclass
class _Streamed:
    text: str
    reason: FinishReason | None = None
    pieces: int = 0
    first_token_at: float | None = None
    disagreed: bool = False
    """With a text to heal: the answer did not start with it."""


def prompt_as_text(vocab: Any, tokens: Sequence[int]) -> str:
    """The prompt as a server that tokenizes text with special tokens parsed reads it back:
    control tokens (FIM markers) written out as their text."""
    out: list[bytes] = []
    for token in tokens:
        if vocab.is_control(token):
            out.append(vocab.token_text(token).encode("utf-8"))
        else:
            out.append(vocab.piece(token))
    return b"".join(out).decode("utf-8", "replace")
