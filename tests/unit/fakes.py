"""A word-level vocabulary and a scripted generator: the pipeline tested without a model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from lsp_server.generator import (
    INCOMPLETE,
    CancelToken,
    Candidate,
    FinishReason,
    Generation,
    GenerationRequest,
)


class FakeVocab:
    """Tokens are words, single non-word characters, and the listed specials."""

    def __init__(
        self,
        specials: tuple[str, ...] = (),
        metadata: dict[str, str] | None = None,
        architecture: str = "llama",
        fim: dict[str, int] | None = None,
    ) -> None:
        self._specials = {text: 1000 + i for i, text in enumerate(specials)}
        self._metadata = metadata or {}
        self._architecture = architecture
        self._fim = fim or {}
        self.calls = 0
        self._pieces: dict[int, str] = {}
        self._ids: dict[str, int] = {}

    add_bos = True
    bos_id = 1
    n_ctx = 4096

    @property
    def architecture(self) -> str:
        return self._architecture

    def metadata(self, key: str) -> str | None:
        return self._metadata.get(key)

    def special_token_id(self, text: str) -> int | None:
        return self._specials.get(text)

    def token_text(self, token_id: int) -> str:
        return next((t for t, i in self._specials.items() if i == token_id), "?")

    def fim_token_ids(self) -> dict[str, int]:
        return dict(self._fim)

    def token_piece(self, token: int) -> str:
        return self._pieces.get(token, "?")

    def detokenize(self, tokens: Sequence[int]) -> str:
        return "".join(self.token_piece(token) for token in tokens)

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        self.calls += 1
        pieces = re.findall(r"\w+|\s|[^\w\s]", text)
        ids = [self._id(piece) for piece in pieces]
        return ([self.bos_id] if add_bos else []) + ids

    def _id(self, piece: str) -> int:
        """One id per distinct piece, the same in every run (ids from `hash()` collided
        in about one run in ten, as Python salts string hashes per process)."""
        if piece not in self._ids:
            number = len(self._ids) + 2
            self._ids[piece] = number if number < 1000 else number + 1000  # clear of the specials
            self._pieces[self._ids[piece]] = piece
        return self._ids[piece]


@dataclass
class FakeGenerator:
    """A `Generator` that answers every request with `script`, as the engine would: the
    healed text first (the engine forces it), then the script, cut where the request's
    stop rule cuts it, within `max_tokens` (one character a token). It records what it
    was asked."""

    script: str = ""
    vocab: FakeVocab = field(default_factory=FakeVocab)
    primed: bool = True
    """False: nothing in its cache yet. True: its cache holds the last prompt it generated
    from or prefilled (`cached`), or, before any, whatever a request needs."""
    cached: list[int] | None = None
    requests: list[GenerationRequest] = field(default_factory=list)
    prefilled: list[list[int]] = field(default_factory=list)
    alternatives: tuple[tuple[str, float], ...] = ()
    """What a request with `alternatives` also gets, as the engine would branch them: each
    a script written after the healed text, with its score (log-probability), in the order
    the first tokens were (as many as asked for, after the answer's)."""
    ranked: tuple[tuple[str, float], ...] = ()
    """What a request with `candidates` > 1 decodes instead of `script`: each a script and its
    score; the best usable one is the answer, as ranking picks it."""

    @property
    def model(self) -> FakeVocab:
        return self.vocab

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> Generation:
        self.requests.append(request)
        self.cached = list(request.prompt)
        if cancel.cancelled:
            return Generation("", "cancelled", len(request.prompt), 0, 0, 0.0, 0.0)
        self.primed = True
        if request.candidates > 1 and self.ranked:
            ranked = [_candidate(request, *_write(request, script), score) for script, score in self.ranked]
            usable = [c for c in ranked if c.final] or ranked
            best = max(usable, key=lambda c: c.score)
            return replace(_generation(best.text, best.reason, len(request.prompt)), candidates=tuple(ranked))
        text, reason = _write(request, self.script)
        generation = _generation(text, reason, len(request.prompt))
        if request.alternatives <= 0 or not self.alternatives:
            return generation
        answer = _candidate(request, text, reason, 0.0)
        others = [_candidate(request, *_write(request, s), score) for s, score in self.alternatives]
        return replace(generation, candidates=(answer, *others[: request.alternatives]))

    def uncached(self, prompt: Sequence[int]) -> int:
        if not self.primed:
            return len(prompt)
        if self.cached is None:
            return 0
        same = 0
        for old, new in zip(self.cached, prompt, strict=False):
            if old != new:
                break
            same += 1
        return len(prompt) - same

    def prefill(self, prompt: Sequence[int], after: CancelToken | None = None) -> Future[int] | None:
        self.prefilled.append(list(prompt))
        self.primed = True
        self.cached = list(prompt)
        done: Future[int] = Future()
        done.set_result(0)
        return done


def _write(request: GenerationRequest, script: str) -> tuple[str, FinishReason]:
    """What the engine writes for `script`: the healed text first, cut where the stop rule
    cuts it, within `max_tokens` (one character a token)."""
    written = request.forced_prefix + script
    text: str = written[: request.max_tokens]
    reason: FinishReason = "length" if len(written) > request.max_tokens else "eos"
    for end in range(1, len(text) + 1):
        cut = request.stop(text[:end]) if request.stop is not None else None
        if cut is not None:
            return text[:cut], "stop"
    return text, reason


def _candidate(request: GenerationRequest, text: str, reason: FinishReason, score: float) -> Candidate:
    final = text
    if request.finalize is not None:
        final = request.finalize(text, reason not in INCOMPLETE) or ""
    return Candidate(text, final, score, 0.0, reason, len(text))


def _generation(text: str, reason: FinishReason, prompt_tokens: int) -> Generation:
    return Generation(text, reason, prompt_tokens, 0, len(text), 1.0, 1.0)
