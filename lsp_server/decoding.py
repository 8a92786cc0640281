"""The decoding rule: which token comes next, and when a completion has ended.

Shared by the engine (greedy, or several candidates side by side) and the
benchmark's floor, so that what the floor measures is what the server does.
"""

from __future__ import annotations

import codecs
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lsp_server.generator import FinishReason, GenerationRequest

if TYPE_CHECKING:
    from lsp_server.llama_model import LlamaModel

_HEALING_CANDIDATES = 512
ALTERNATIVE_ODDS = 100_000.0
"""An alternative's first token is at least 1/ALTERNATIVE_ODDS as likely as the answer's. A
small model is sure of most starts by thousands to one and the runners-up are still the
alternatives worth showing (Gemma 3 270M after `sy = ` in examples/demo.py: `sum` over `max`
by 2,300 to 1); past this a start is noise."""


def forced_tokens(model: LlamaModel, request: GenerationRequest) -> list[int]:
    """The tokens `next_token` forces first (see `GenerationRequest.forced_as_written`)."""
    if request.forced_as_written and request.forced_prefix:
        return model.tokenize(request.forced_prefix)
    return []


def next_token(
    model: LlamaModel,
    logits: npt.NDArray[np.float32],
    request: GenerationRequest,
    text: str,
    tokens: Sequence[int],
    written: Sequence[int],
) -> int | None:
    """The server's decoding rule, shared with the benchmark's floor: the forced tokens,
    then tokens consistent with the healed text, then greedy; None ends the completion."""
    if len(tokens) < len(written):
        return written[len(tokens)]
    if len(text) < len(request.forced_prefix):
        return _consistent_token(model, logits, request.forced_prefix[len(text) :])
    if request.start_on_line and not tokens:
        return _token_on_this_line(model, logits, request.stop_token_ids)
    return int(logits.argmax())


def _token_on_this_line(
    model: LlamaModel, logits: npt.NDArray[np.float32], stop_token_ids: frozenset[int]
) -> int | None:
    """The most likely token that neither ends the completion nor starts with a line break."""
    found = tokens_on_this_line(model, logits, stop_token_ids, 1)
    return found[0] if found else None


def tokens_on_this_line(
    model: LlamaModel, logits: npt.NDArray[np.float32], stop_token_ids: frozenset[int], count: int
) -> list[int]:
    """The `count` most likely tokens that neither end the completion nor start with a line break."""
    found: list[int] = []
    considered = min(_HEALING_CANDIDATES, logits.size)
    top = np.argpartition(logits, -considered)[-considered:]
    for candidate in top[np.argsort(logits[top])[::-1]]:
        token = int(candidate)
        if model.is_eog(token) or model.is_control(token) or token in stop_token_ids:
            continue
        if on_this_line(model.token_piece(token)):
            found.append(token)
            if len(found) == count:
                break
    return found


def other_first_tokens(
    model: LlamaModel,
    logits: npt.NDArray[np.float32],
    request: GenerationRequest,
    text: str,
    chosen: int | None,
    count: int,
) -> list[int]:
    """Up to `count` of the most likely tokens the rule could have begun with instead of
    `chosen`, under the same constraints (agreeing with the healed text still unwritten; on
    the cursor's line where the answer starts there), each a text of its own: a token whose
    piece is the start of another's, or begins with it, would mostly write the same text
    split otherwise, so only the more likely of the two is taken. None that the model finds
    more than ALTERNATIVE_ODDS times less likely than `chosen` (or the most likely, without
    one): such a start is noise, and its line costs as much as a good one."""
    if count <= 0:
        return []
    remaining = request.forced_prefix[len(text) :]
    chosen_piece = model.token_piece(chosen) if chosen is not None else ""
    on_line = request.start_on_line or chosen is None or on_this_line(chosen_piece)
    taken = [chosen_piece] if chosen_piece else []
    found: list[int] = []
    considered = min(_HEALING_CANDIDATES, logits.size)
    top = np.argpartition(logits, -considered)[-considered:]
    floor = float(logits[chosen] if chosen is not None else logits.max()) - float(np.log(ALTERNATIVE_ODDS))
    for candidate in top[np.argsort(logits[top])[::-1]]:
        token = int(candidate)
        if logits[token] < floor:
            break
        if (
            token == chosen
            or model.is_eog(token)
            or model.is_control(token)
            or token in request.stop_token_ids
        ):
            continue
        piece = model.token_piece(token)
        fits = agrees_with(piece, remaining) if remaining else on_this_line(piece) or not on_line
        if not piece or not fits or any(piece.startswith(t) or t.startswith(piece) for t in taken):
            continue
        found.append(token)
        taken.append(piece)
        if len(found) == count:
            break
    return found


def _consistent_token(model: LlamaModel, logits: npt.NDArray[np.float32], remaining: str) -> int | None:
    """The most likely token whose text agrees with `remaining` (extends it or is its start)."""
    count = min(_HEALING_CANDIDATES, logits.size)  # small vocabularies (test models) have fewer
    top = np.argpartition(logits, -count)[-count:]
    for token in top[np.argsort(logits[top])[::-1]]:
        if agrees_with(model.token_piece(int(token)), remaining) and not model.is_control(int(token)):
            return int(token)
    return None


def agrees_with(piece: str, remaining: str) -> bool:
    """Whether a token's text may come next while `remaining` of the healed text is unwritten:
    it extends that text or is its start."""
    # Whitespace must come back exactly: a longer run of spaces "agrees" with the
    # indentation as text but puts the code at another depth (and the model, once
    # past it, keeps writing spaces).
    overshoot = piece.startswith(remaining) and piece[len(remaining) : len(remaining) + 1].isspace()
    return bool(piece) and not overshoot and (piece.startswith(remaining) or remaining.startswith(piece))


def on_this_line(piece: str) -> bool:
    """Whether a token's text may begin a completion that must start on the cursor's line."""
    return bool(piece) and not piece.startswith(("\n", "\r"))


def _utf8_decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")("replace")


@dataclass
class Branch:
    """One completion being decoded: its text so far, the KV sequence and position its
    next token goes to, and (once it has ended) why."""

    seq: int
    position: int
    max_tokens: int
    deadline: float
    score_tokens: bool = False
    """Add up the log-probability of each token taken (ranking)."""
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    logprob: float = 0.0
    reason: FinishReason | None = None
    decoder: codecs.IncrementalDecoder = field(default_factory=_utf8_decoder)

    def take(
        self,
        model: LlamaModel,
        request: GenerationRequest,
        token: int | None,
        logits: npt.NDArray[np.float32],
    ) -> bool:
        """Add the token the rule chose (None: none); False when the completion has ended
        (`reason` says why) and the token is not to be decoded."""
        if token is None or model.is_eog(token) or token in request.stop_token_ids or model.is_control(token):
            self.reason = "eos"  # FIM markers never leak into a completion
            return False
        if self.score_tokens:
            self.logprob += log_probability(logits, token)
        self.tokens.append(token)
        self.text += self.decoder.decode(model.piece(token))
        cut = request.stop(self.text) if request.stop is not None else None
        if cut is not None:
            self.text = self.text[:cut]
            self.reason = "stop"
        elif time.perf_counter() > self.deadline:
            self.reason = "budget"
        elif self.position >= model.n_ctx:
            self.reason = "context"
        elif len(self.tokens) >= self.max_tokens:
            self.reason = "length"
        return self.reason is None

    def choosing(self, written: Sequence[int]) -> bool:
        """Whether the rule chooses the next token (the forced tokens are written; healed
        text may remain, which the choice must agree with)."""
        return len(self.tokens) >= len(written)

    def forcing(self, request: GenerationRequest, written: Sequence[int]) -> bool:
        """Whether the rule is still writing forced or healed text (it does not choose yet)."""
        return len(self.tokens) < len(written) or len(self.text) < len(request.forced_prefix)

    def fork(self, seq: int) -> Branch:
        """A copy that goes on in sequence `seq` (the caller copies the KV cells)."""
        twin = dataclasses.replace(self, seq=seq, tokens=list(self.tokens), decoder=_utf8_decoder())
        twin.decoder.setstate(self.decoder.getstate())
        return twin


def log_probability(logits: npt.NDArray[np.float32], token: int) -> float:
    top = float(logits.max())
    return float(logits[token]) - top - float(np.log(np.exp(logits - top, dtype=np.float64).sum()))
